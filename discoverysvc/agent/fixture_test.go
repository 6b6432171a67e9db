package agent_test

import (
	"net/http/httptest"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
)

const testToken = "s3cret-token"

// apiFixture is the discovery service over a real etcd member, for the
// agent to heartbeat to.
type apiFixture struct {
	client *clientv3.Client
	srv    *httptest.Server
}

// startAPI runs discovery with the admin token, letting servers register
// loopback URLs as the test backends have.
func startAPI(t *testing.T, token string) *apiFixture {
	t.Helper()
	c := etcdtest.NewClient(t, etcdtest.Start(t))
	srv := httptest.NewServer(discoverysvc.New(discoverysvc.Config{Client: c, Token: token, AllowLoopback: true}).Handler())
	t.Cleanup(srv.Close)
	return &apiFixture{client: c, srv: srv}
}
