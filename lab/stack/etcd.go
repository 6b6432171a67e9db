package stack

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/lab/proc"
	"github.com/sessionpin/sessionpin/lab/topo"
)

func etcdClientURL(r string) string {
	return fmt.Sprintf("http://%s:%d", topo.InfraHost(r).Addr, topo.PortEtcdClient)
}

func etcdPeerURL(r string) string {
	return fmt.Sprintf("http://%s:%d", topo.InfraHost(r).Addr, topo.PortEtcdPeer)
}

// EtcdEndpoint is region r's member's client address, host:port.
func EtcdEndpoint(r string) string {
	return fmt.Sprintf("%s:%d", topo.InfraHost(r).Addr, topo.PortEtcdClient)
}

// upEtcd starts one member per region of one cluster.
func (s *Stack) upEtcd(ctx context.Context) error {
	var cluster []string
	for _, r := range topo.Regions {
		cluster = append(cluster, r+"="+etcdPeerURL(r))
	}
	for _, r := range topo.Regions {
		p, err := s.sup.Start(proc.Spec{
			Name: "etcd-" + r,
			NS:   s.Net.NS(topo.InfraHost(r)),
			Args: []string{s.cfg.Lab, "etcd-member",
				"--name", r,
				"--dir", filepath.Join(s.cfg.Dir, "etcd-"+r),
				"--client-url", etcdClientURL(r),
				"--peer-url", etcdPeerURL(r),
				"--initial-cluster", strings.Join(cluster, ","),
				"--heartbeat", s.cfg.EtcdHeartbeat.String(),
				"--election", s.cfg.EtcdElection.String(),
			},
		})
		if err != nil {
			return err
		}
		s.etcd[r] = p
	}
	for _, r := range topo.Regions {
		if err := s.waitHTTP(ctx, s.Net.NS(topo.InfraHost(r)), etcdClientURL(r)+"/health", 90*time.Second, s.etcd[r]); err != nil {
			return fmt.Errorf("etcd member %s: %w", r, err)
		}
	}
	return nil
}

// EtcdLeader returns the region whose member leads the cluster.
func (s *Stack) EtcdLeader(ctx context.Context) (string, error) {
	for _, r := range topo.Regions {
		var st struct {
			Leader string `json:"leader"`
		}
		if err := s.getJSON(ctx, s.Net.NS(topo.InfraHost(r)), etcdClientURL(r)+"/v3/maintenance/status", "{}", &st); err != nil {
			continue
		}
		for _, o := range topo.Regions {
			var mst struct {
				Header struct {
					MemberID string `json:"member_id"`
				} `json:"header"`
			}
			if err := s.getJSON(ctx, s.Net.NS(topo.InfraHost(o)), etcdClientURL(o)+"/v3/maintenance/status", "{}", &mst); err == nil && mst.Header.MemberID == st.Leader {
				return o, nil
			}
		}
	}
	return "", fmt.Errorf("no etcd member names a leader")
}

// EtcdDBSize returns the database size of region r's member, in bytes.
func (s *Stack) EtcdDBSize(ctx context.Context, r string) (int64, error) {
	var st struct {
		DBSize string `json:"dbSize"`
	}
	if err := s.getJSON(ctx, s.Net.NS(topo.InfraHost(r)), etcdClientURL(r)+"/v3/maintenance/status", "{}", &st); err != nil {
		return 0, err
	}
	var n int64
	_, err := fmt.Sscan(st.DBSize, &n)
	return n, err
}

func (s *Stack) getJSON(ctx context.Context, ns, url, body string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := s.HTTP(ns).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return decodeJSON(resp.Body, v)
}
