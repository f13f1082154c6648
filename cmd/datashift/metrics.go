package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/datashift/datashift/coordinator"
)

// nodeMetrics is a node's Prometheus registry (its own, not the process's
// default, so that nothing a library registers globally shows up, and
// two nodes in one test process do not collide). It is made before the
// node, whose Config takes counts; serve adds the node's view of the
// cluster once the node is started.
type nodeMetrics struct {
	reg    *prometheus.Registry
	counts *coordinator.Metrics
}

func newNodeMetrics() (*nodeMetrics, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	counts, err := coordinator.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return &nodeMetrics{reg: reg, counts: counts}, nil
}

// serve registers node's view of the cluster and returns the handler of
// GET /metrics. It needs no token: it shows counts, not specs or DSNs.
// A scrape whose store reads fail still answers, without the cluster's
// gauges, and the failure is logged.
func (m *nodeMetrics) serve(node *coordinator.Node, log *slog.Logger) (http.Handler, error) {
	if err := m.reg.Register(coordinator.NewStateCollector(node)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}
	if log != nil {
		opts.ErrorLog = scrapeLog{log}
	}
	return promhttp.HandlerFor(m.reg, opts), nil
}

// scrapeLog hands promhttp's errors to the node's log.
type scrapeLog struct{ log *slog.Logger }

func (l scrapeLog) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
