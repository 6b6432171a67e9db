package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// Bad flags are refused with a message naming the flag, before anything
// starts (parseOptions is all that runs before the lab is built).
func TestParseOptionsRefuses(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-rtt-us-eu", "-10ms"}, "-rtt-us-eu: -10ms is negative"},
		{[]string{"-jitter", "-1ms"}, "-jitter: -1ms is negative"},
		{[]string{"-lag", "-1s"}, "-lag: -1s is negative"},
		{[]string{"-scenario", "meteor"}, `-scenario: unknown scenario "meteor"`},
		{[]string{"-modes", "rr,sticky"}, `-modes: unknown mode "sticky"`},
		{[]string{"-modes", ","}, "-modes: no mode given"},
		{[]string{"-lag", "15s"}, "-lag: 15s is not shorter than the shortest run"},
		{[]string{"-lag", "10s", "-scale", "0.2"}, "-lag: 10s is not shorter than the shortest run (3s"},
		{[]string{"-jitter", "50ms"}, "-jitter: 50ms is more than half of -rtt-us-eu"},
		{[]string{"-clients", "0"}, "-clients: 0 is not between 1 and 100"},
		{[]string{"-scale", "0"}, "-scale: 0 is not between 0.1 and 10"},
		{[]string{"-lease-ttl", "1s"}, "-lease-ttl: 1s is not between 2s and 1m"},
		{[]string{"-careless", "-0.1"}, "-careless: -0.1 is not a share between 0 and 1"},
		{[]string{"-careless", "1.5"}, "-careless: 1.5 is not a share between 0 and 1"},
		{[]string{"-careless", "NaN"}, "-careless: NaN is not a share between 0 and 1"},
		{[]string{"-roam", "-0.1"}, "-roam: -0.1 is not a share between 0 and 1"},
		{[]string{"-roam", "2"}, "-roam: 2 is not a share between 0 and 1"},
		{[]string{"-roam", "NaN"}, "-roam: NaN is not a share between 0 and 1"},
		{[]string{"-modes", "sessionpin,blind"}, `-modes: unknown mode "blind"`},
		{[]string{"-limit-edges", "0"}, "-limit-edges: 0 is not between 1 and 100"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseOptions(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.scenarios, ",") != "steady,rolling-restart,kill,cut-server,cut-region,cut-leader,lag-step" {
		t.Errorf("default scenarios %v (the soak runs only when named)", o.scenarios)
	}
	if strings.Join(o.modes, ",") != "rr,cookie,sessionpin" {
		t.Errorf("default modes %v", o.modes)
	}
	if o.careless != 0 || o.roam != 0 {
		t.Errorf("default careless share %v and roaming share %v, want 0", o.careless, o.roam)
	}
	o, err = parseOptions([]string{"-modes", "sessionpin,sessionpin-blind", "-careless", "0.2"}, io.Discard)
	if err != nil || strings.Join(o.modes, ",") != "sessionpin,sessionpin-blind" || o.careless != 0.2 {
		t.Errorf("got %v, %v, %v", o.modes, o.careless, err)
	}
	r := o.rtts()
	if r.Get("us-east", "eu-west") != 80*time.Millisecond || r.Get("ap-south", "eu-west") != 120*time.Millisecond || r.Get("ap-south", "us-east") != 200*time.Millisecond {
		t.Errorf("default round trips %v", r)
	}
}

func TestEtcdTimeouts(t *testing.T) {
	hb, el := etcdTimeouts(200*time.Millisecond, 5*time.Millisecond)
	if hb != 260*time.Millisecond || el != 2600*time.Millisecond {
		t.Errorf("got heartbeat %v election %v", hb, el)
	}
	hb, _ = etcdTimeouts(0, 0)
	if hb != 100*time.Millisecond {
		t.Errorf("on one host the heartbeat is etcd's default 100ms, got %v", hb)
	}
}
