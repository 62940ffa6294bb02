package cofferd

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cofferhq/coffer/store"
)

// cofferdCollector reports, at each scrape, what the daemon around the API
// knows: the PostgreSQL pool, the transparency log's backlog and the age of
// its checkpoint. The log figures come from two cheap queries on indexed
// rows; a scrape while the database is down reports the pool only, and
// coffer_log_scrape_ok 0.
type cofferdCollector struct {
	db *store.DB

	poolTotal, poolIdle, poolAcquired, poolMax, poolConstructing *prometheus.Desc
	poolAcquires, poolEmptyAcquires, poolCanceledAcquires        *prometheus.Desc
	poolAcquireSeconds                                           *prometheus.Desc
	pendingLeaves, sequencerLag, checkpointAge, treeSize, logOK  *prometheus.Desc
}

func newCofferdCollector(db *store.DB) *cofferdCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &cofferdCollector{
		db:                   db,
		poolTotal:            d("coffer_db_pool_connections", "PostgreSQL pool: open connections."),
		poolIdle:             d("coffer_db_pool_idle_connections", "PostgreSQL pool: idle connections."),
		poolAcquired:         d("coffer_db_pool_acquired_connections", "PostgreSQL pool: connections in use."),
		poolConstructing:     d("coffer_db_pool_constructing_connections", "PostgreSQL pool: connections being opened."),
		poolMax:              d("coffer_db_pool_max_connections", "PostgreSQL pool: size limit (-db-max-conns)."),
		poolAcquires:         d("coffer_db_pool_acquires_total", "PostgreSQL pool: connections handed out."),
		poolEmptyAcquires:    d("coffer_db_pool_empty_acquires_total", "PostgreSQL pool: acquires that had to wait for a connection."),
		poolCanceledAcquires: d("coffer_db_pool_canceled_acquires_total", "PostgreSQL pool: acquires given up (deadline or cancel)."),
		poolAcquireSeconds:   d("coffer_db_pool_acquire_seconds_total", "PostgreSQL pool: total time spent acquiring connections."),
		pendingLeaves:        d("coffer_log_pending_leaves", "Transparency log: leaves written but not yet integrated into a checkpoint."),
		sequencerLag:         d("coffer_log_sequencer_lag_seconds", "Transparency log: age of the oldest pending leaf (0 when none)."),
		checkpointAge:        d("coffer_log_checkpoint_age_seconds", "Transparency log: time since the checkpoint was last signed."),
		treeSize:             d("coffer_log_tree_size", "Transparency log: leaves in the signed tree."),
		logOK:                d("coffer_log_scrape_ok", "1 if the log figures above could be read from the database."),
	}
}

func (c *cofferdCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.poolTotal, c.poolIdle, c.poolAcquired, c.poolConstructing, c.poolMax,
		c.poolAcquires, c.poolEmptyAcquires, c.poolCanceledAcquires, c.poolAcquireSeconds,
		c.pendingLeaves, c.sequencerLag, c.checkpointAge, c.treeSize, c.logOK} {
		ch <- d
	}
}

func (c *cofferdCollector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	k := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	s := c.db.Pool().Stat()
	g(c.poolTotal, float64(s.TotalConns()))
	g(c.poolIdle, float64(s.IdleConns()))
	g(c.poolAcquired, float64(s.AcquiredConns()))
	g(c.poolConstructing, float64(s.ConstructingConns()))
	g(c.poolMax, float64(s.MaxConns()))
	k(c.poolAcquires, float64(s.AcquireCount()))
	k(c.poolEmptyAcquires, float64(s.EmptyAcquireCount()))
	k(c.poolCanceledAcquires, float64(s.CanceledAcquireCount()))
	k(c.poolAcquireSeconds, s.AcquireDuration().Seconds())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.db.LogStatus(ctx)
	if err != nil {
		g(c.logOK, 0)
		return
	}
	g(c.logOK, 1)
	g(c.pendingLeaves, float64(st.Pending))
	lag := 0.0
	if st.Pending > 0 {
		lag = max(st.Now.Sub(st.OldestPending).Seconds(), 0)
	}
	g(c.sequencerLag, lag)
	g(c.checkpointAge, max(st.Now.Sub(st.CheckpointSigned).Seconds(), 0))
	g(c.treeSize, float64(st.TreeSize))
}

// gcMetrics count what the garbage collector removed.
type gcMetrics struct {
	uploads, blobs prometheus.Counter
}

func newGCMetrics(reg prometheus.Registerer) *gcMetrics {
	m := &gcMetrics{
		uploads: prometheus.NewCounter(prometheus.CounterOpts{Name: "coffer_gc_uploads_collected_total", Help: "Abandoned uploads removed by the garbage collector."}),
		blobs:   prometheus.NewCounter(prometheus.CounterOpts{Name: "coffer_gc_blobs_collected_total", Help: "Orphan blobs deleted by the garbage collector."}),
	}
	reg.MustRegister(m.uploads, m.blobs)
	return m
}
