package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/client"
	"github.com/sessionpin/sessionpin/internal/agenttest"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
)

// TestClientAgainstTheService makes every call of the client against the
// real service over a real etcd member, with and without the right token.
func TestClientAgainstTheService(t *testing.T) {
	const token = "admin-token"
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	srv := httptest.NewServer(discoverysvc.New(discoverysvc.Config{Client: c, Token: token, AllowLoopback: true}).Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	region, url, load := "eu", "http://10.0.0.1:9001", 0.25
	beat := client.HeartbeatRequest{Region: &region, URL: &url, Load: &load}

	wrong := &client.Client{Base: srv.URL, Token: "wrong"}
	err := wrong.Heartbeat(ctx, "eu-1", beat)
	if se, ok := errors.AsType[*client.StatusError](err); !ok || se.Status != http.StatusUnauthorized || !se.Refused() || se.Message == "" {
		t.Fatalf("heartbeat with a wrong token: %v", err)
	}
	if s := agenttest.Stored(t, c, "eu-1"); s != nil {
		t.Fatalf("registered with a wrong token: %+v", s)
	}

	api := &client.Client{Base: srv.URL + "/", Token: token}
	if err := api.Heartbeat(ctx, "eu-1", beat); err != nil {
		t.Fatal(err)
	}
	if s := agenttest.Stored(t, c, "eu-1"); s == nil || s.Load != load || s.URL != url {
		t.Fatalf("stored after the heartbeat: %+v", s)
	}
	if _, err := api.DrainStatus(ctx, "eu-1", 0); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("drain status of a server not draining: %v", err)
	}
	st, err := api.Drain(ctx, "eu-1", "kernel update", 30*time.Second)
	if err != nil || !st.Draining || !st.Registered || st.Since == nil || st.Reason != "kernel update" || st.Quiet != "30s" {
		t.Fatalf("drain: %+v, %v", st, err)
	}
	if st, err := api.DrainStatus(ctx, "eu-1", time.Millisecond); err != nil || !st.Draining || st.Quiet != "1ms" {
		t.Fatalf("drain status: %+v, %v", st, err)
	}
	for i, want := range []bool{true, false} {
		if found, err := api.Undrain(ctx, "eu-1"); err != nil || found != want {
			t.Fatalf("undrain %d: found %v, %v; want %v", i+1, found, err, want)
		}
	}
	for i, want := range []bool{true, false} {
		if found, err := api.Deregister(ctx, "eu-1"); err != nil || found != want {
			t.Fatalf("deregister %d: found %v, %v; want %v", i+1, found, err, want)
		}
	}
	if s := agenttest.Stored(t, c, "eu-1"); s != nil {
		t.Fatalf("still stored after deregistering: %+v", s)
	}
}
