package schema

import "testing"

func TestValidateURLRefusesHostsNoEdgeShouldDial(t *testing.T) {
	refused := []string{
		"http://169.254.169.254/latest/meta-data",
		"http://[fe80::1]:80",
		"http://[fe80::1%25eth0]:80",
		"http://0.0.0.0:2019",
		"http://[::]:2019",
		"http://224.0.0.1",
		"http://[ff02::1]",
		"http://255.255.255.255",
		"http://[::ffff:169.254.169.254]",
		"http://[::ffff:0.0.0.0]",
		"http://127.1:2019",
		"http://0x7f000001:2019",
		"http://0x7F.0.0.1",
		"http://2130706433:2019",
		"http://017700000001",
		"http://a.b.123",
	}
	for _, u := range refused {
		if err := ValidateURL(u); err == nil {
			t.Errorf("ValidateURL(%q) accepted", u)
		}
	}
	accepted := []string{
		"http://10.0.0.1:9000", "https://eu-1.api.example.com", "http://[2001:db8::1]:80",
		"http://127.0.0.1:9001", "http://localhost:9001", "http://server-0x1", "http://app.example.co1",
	}
	for _, u := range accepted {
		if err := ValidateURL(u); err != nil {
			t.Errorf("ValidateURL(%q): %v", u, err)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.9.9.9": true, "::1": true, "::ffff:127.0.0.1": true,
		"localhost": true, "LOCALHOST.": true, "app.localhost": true,
		"10.0.0.1": false, "example.com": false, "localhost.example.com": false, "": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{"http://169.254.169.254", "http://127.1", "http://[fe80::1%25x]", "http://a:1/p", "http://0x7f.1", "https://[::ffff:10.0.0.1]:8443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if ValidateURL(raw) != nil {
			return
		}
		// Whatever passes has a dialable host:port.
		if _, err := DialAddress(raw); err != nil {
			t.Fatalf("ValidateURL(%q) passed but DialAddress failed: %v", raw, err)
		}
	})
}
