package agent

import (
	"context"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
)

func sample(labels map[string]string, v float64) *model.Sample {
	m := model.Metric{}
	for k, val := range labels {
		m[model.LabelName(k)] = model.LabelValue(val)
	}
	return &model.Sample{Metric: m, Value: model.SampleValue(v)}
}

func TestLoadFromVector(t *testing.T) {
	us1 := sample(map[string]string{"server": "us-1"}, 0.42)
	tests := []struct {
		name    string
		v       model.Value
		label   string
		want    float64
		wantErr bool
	}{
		{"its own sample", model.Vector{sample(map[string]string{"server": "us-2"}, 0.9), us1}, "server", 0.42, false},
		{"another label", model.Vector{sample(map[string]string{"instance": "us-1"}, 0.3)}, "instance", 0.3, false},
		{"zero is a load", model.Vector{sample(map[string]string{"server": "us-1"}, 0)}, "server", 0, false},
		{"no sample of its own", model.Vector{sample(map[string]string{"server": "us-2"}, 0.9)}, "server", 0, true},
		{"an empty vector", model.Vector{}, "server", 0, true},
		{"two samples of its own", model.Vector{us1, sample(map[string]string{"server": "us-1", "x": "y"}, 0.1)}, "server", 0, true},
		{"negative", model.Vector{sample(map[string]string{"server": "us-1"}, -0.1)}, "server", 0, true},
		{"NaN", model.Vector{sample(map[string]string{"server": "us-1"}, math.NaN())}, "server", 0, true},
		{"infinite", model.Vector{sample(map[string]string{"server": "us-1"}, math.Inf(1))}, "server", 0, true},
		{"a scalar", &model.Scalar{Value: 0.5}, "server", 0, true},
		{"a matrix", model.Matrix{}, "server", 0, true},
		{"nothing", nil, "server", 0, true},
		{"a nil sample", model.Vector{nil, us1}, "server", 0.42, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadFromVector(tt.v, tt.label, "us-1")
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("LoadFromVector = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPrometheusLoadValidate(t *testing.T) {
	for _, tt := range []struct {
		p    PrometheusLoad
		want string // "" for valid; else the start of the error
	}{
		{PrometheusLoad{URL: "http://prom:9090", Query: "app_load"}, ""},
		{PrometheusLoad{URL: "http://prom:9090", Query: "app_load", Label: "instance"}, ""},
		{PrometheusLoad{URL: "", Query: "app_load"}, "load-prometheus:"},
		{PrometheusLoad{URL: "ftp://prom", Query: "app_load"}, "load-prometheus:"},
		{PrometheusLoad{URL: "http://prom:9090"}, "load-query:"},
		{PrometheusLoad{URL: "http://prom:9090", Query: "q", Label: "server-id"}, "load-label:"},
	} {
		err := tt.p.validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)) {
			t.Errorf("%+v: %v, want %q", tt.p, err, tt.want)
		}
	}
}

// answer is a RoundTripper that answers every request with body, standing
// in for the network so that the fuzz target reaches the client library's
// decoding and LoadFromVector quickly.
type answer struct {
	status int
	body   string
}

func (a answer) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: a.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(a.body)), Request: req}, nil
}

// FuzzPrometheusAnswer feeds arbitrary answers to a load query: the agent
// either reads a finite load >= 0 or reports an error, and never panics.
func FuzzPrometheusAnswer(f *testing.F) {
	f.Add(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"server":"us-1"},"value":[1700000000.1,"0.42"]}]}}`)
	f.Add(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"server":"us-1"},"value":[1700000000.1,"NaN"]}]}}`)
	f.Add(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"server":"us-1"},"value":[1,"1"]},{"metric":{"server":"us-1"},"value":[1,"2"]}]}}`)
	f.Add(200, `{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"0.5"]}}`)
	f.Add(200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
	f.Add(400, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
	f.Add(200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"server":"us-1"},"value":[1,"-1"]}]}}`)
	f.Add(200, `not json`)
	f.Add(503, ``)
	p := &PrometheusLoad{URL: "http://prometheus.invalid:9090", Query: "max by (server) (app_load)"}
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 100 || status > 999 {
			return
		}
		load, err := p.read(context.Background(), answer{status, body}, "us-1")
		if err == nil && (math.IsNaN(load) || math.IsInf(load, 0) || load < 0) {
			t.Fatalf("read a load of %v from %q", load, body)
		}
	})
}
