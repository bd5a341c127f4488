package clone

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
)

// Result is what a complete clone did.
type Result struct {
	Snapshot       binlog.Position // the agent streams from here
	GTIDState      string          // the standby's @@gtid_binlog_state now
	BlockedCommits time.Duration   // how long the master's commits waited for the snapshot
	// BlockCommitWait is the part of it BACKUP STAGE BLOCK_COMMIT took
	// waiting for the commits in flight.
	BlockCommitWait time.Duration
	Tables          int
	Rows, Bytes     int64
	Elapsed         time.Duration
	Warnings        []string
}

// Cloner copies the master into the standby.
type Cloner struct {
	cfg Config
	log *slog.Logger
}

// New returns a Cloner for a valid cfg.
func New(cfg Config) (*Cloner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cloner{cfg: cfg, log: cfg.Logger.With("component", "clone")}, nil
}

func openDB(dsn string, maxConns int) (*sql.DB, *mysql.Config, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, nil, err
	}
	mc.ReadTimeout, mc.WriteTimeout = time.Hour, time.Hour
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxConns)
	return db, mc, nil
}

// Run clones. Any error leaves the record "running" or "failed" (never
// complete), and the message says what to do.
func (c *Cloner) Run(ctx context.Context) (Result, error) {
	prev, err := c.cfg.Recorder.Load()
	if err != nil {
		return Result{}, err
	}
	if prev != nil && prev.State == checkpoint.CloneComplete {
		return Result{}, fmt.Errorf("clone: a clone into this data_dir completed at %s (snapshot %s): the agent streams from there; to clone anew, stop the agent and move data_dir away",
			prev.UpdatedAt.Format(time.RFC3339), prev.Snapshot)
	}
	master, mc, err := openDB(c.cfg.MasterDSN, c.cfg.Workers+2)
	if err != nil {
		return Result{}, fmt.Errorf("clone: master DSN: %w", err)
	}
	defer master.Close()
	standby, _, err := openDB(c.cfg.StandbyDSN, c.cfg.Workers+2)
	if err != nil {
		return Result{}, fmt.Errorf("clone: standby DSN: %w", err)
	}
	defer standby.Close()
	r := &run{Cloner: c, master: master, standby: standby, user: "'" + mc.User + "'", prev: prev, start: time.Now()}
	res, err := r.run(ctx)
	if err != nil && r.recorded {
		r.state.State, r.state.Error, r.state.UpdatedAt = checkpoint.CloneFailed, err.Error(), time.Now()
		r.fillProgress()
		if serr := c.cfg.Recorder.Save(r.state); serr != nil {
			c.log.Error("the failed clone's record was not saved", "err", serr)
		}
	}
	return res, err
}

// run is one clone attempt.
type run struct {
	*Cloner
	master, standby *sql.DB
	user            string
	prev            *checkpoint.CloneState
	start           time.Time
	state           checkpoint.CloneState
	recorded        bool // a record says running: failures are recorded
	prog            *progress
	warnings        []string
}

func (r *run) warn(msg string) {
	r.warnings = append(r.warnings, msg)
	r.log.Warn(msg)
}

func (r *run) run(ctx context.Context) (Result, error) {
	coord, err := r.master.Conn(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("clone: master %s: %w", r.cfg.MasterAddr, err)
	}
	defer discard(coord)
	if err := setup(ctx, coord, []string{"SET NAMES utf8mb4", "SET SESSION time_zone = '+00:00'"}); err != nil {
		return Result{}, fmt.Errorf("clone: master %s: %w", r.cfg.MasterAddr, err)
	}
	if err := checkMaster(ctx, coord, r.cfg.MasterAddr); err != nil {
		return Result{}, fmt.Errorf("clone: %w", err)
	}
	var current string
	if err := coord.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err == nil {
		if u, h, ok := strings.Cut(current, "@"); ok {
			r.user = sqlString(u) + "@" + sqlString(h)
		}
	}
	ddl, err := r.standby.Conn(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("clone: standby %s: %w", r.cfg.StandbyAddr, err)
	}
	defer discard(ddl)
	if err := setup(ctx, ddl, ddlSession); err != nil {
		return Result{}, fmt.Errorf("clone: standby %s: %w", r.cfg.StandbyAddr, err)
	}
	schemas, err := userSchemas(ctx, ddl)
	if err != nil {
		return Result{}, fmt.Errorf("clone: standby %s: list schemas: %w", r.cfg.StandbyAddr, err)
	}
	var owned []string
	if r.prev != nil {
		owned = r.prev.Databases
	}
	if err := checkStandbyEmpty(schemas, owned, r.cfg.Replace, r.cfg.StandbyAddr); err != nil {
		return Result{}, err
	}
	var cat *catalog
	var accounts []account
	snap, err := takeSnapshot(ctx, r.master, coord, r.cfg.Workers, r.user, r.cfg.MasterAddr, func() error {
		var err error
		if cat, err = readCatalog(ctx, coord); err != nil {
			return fmt.Errorf("clone: master %s: %w", r.cfg.MasterAddr, err)
		}
		if r.cfg.WithGrants {
			if accounts, err = readAccounts(ctx, coord); err != nil {
				return fmt.Errorf("clone: master %s: %w", r.cfg.MasterAddr, err)
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrPrivileges) || errors.Is(err, ErrSnapshotMismatch) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("clone: %w", err)
	}
	defer func() {
		for _, c := range snap.conns {
			discard(c)
		}
	}()
	r.log.Info("snapshot taken", "position", snap.pos.String(), "gtid_binlog_state", snap.gtidState,
		"commits_blocked", snap.blocked.String(), "block_commit_waited_for_commits_in_flight", snap.blockCommitWait.String(),
		"workers", len(snap.conns), "tables", len(cat.tables))
	r.warnCatalog(cat)
	// From here on the standby is written: record it first.
	drop := make([]string, 0, len(schemas))
	for name := range schemas {
		drop = append(drop, name)
	}
	slices.Sort(drop)
	r.state = checkpoint.CloneState{State: checkpoint.CloneRunning, StartedAt: r.start, UpdatedAt: time.Now(),
		Master: r.cfg.MasterAddr, Standby: r.cfg.StandbyAddr, Workers: r.cfg.Workers, Snapshot: snap.pos,
		GTIDState: snap.gtidState, BlockedCommits: snap.blocked, TablesTotal: len(cat.tables)}
	for _, s := range cat.schemas {
		r.state.Databases = append(r.state.Databases, s.name)
	}
	for _, t := range cat.tables {
		r.state.RowsTotal += t.estRows
	}
	if err := r.cfg.Recorder.Save(r.state); err != nil {
		return Result{}, fmt.Errorf("clone: record the start: %w", err)
	}
	r.recorded = true
	if err := r.prepareStandby(ctx, ddl, drop, cat); err != nil {
		return Result{}, err
	}
	if err := r.copyData(ctx, snap, cat); err != nil {
		return Result{}, err
	}
	return r.finish(ctx, ddl, snap, cat, accounts)
}

// warnCatalog warns about what the snapshot cannot cover.
func (r *run) warnCatalog(cat *catalog) {
	for _, t := range cat.tables {
		if !t.transactional() {
			r.warn(fmt.Sprintf("%s uses %s, which is not transactional: it is copied without a lock and may not match the snapshot (writes to it during the copy are lost or doubled); its copy time, logged at the end, is how long a lock would have been held",
				t, t.engine))
		}
	}
	if cat.events > 0 {
		r.warn(fmt.Sprintf("the master has %d events: they are not copied (a standby must not run them); create them after a promotion", cat.events))
	}
}

// prepareStandby drops the standby's user schemas (checked: empty, ours, or
// --replace) and creates the master's schemas and tables.
func (r *run) prepareStandby(ctx context.Context, ddl *sql.Conn, drop []string, cat *catalog) error {
	for _, name := range drop {
		if _, err := ddl.ExecContext(ctx, "DROP DATABASE "+quoteIdent(name)); err != nil {
			return fmt.Errorf("clone: standby %s: drop schema %s: %w", r.cfg.StandbyAddr, name, err)
		}
		r.log.Info("dropped schema on the standby", "schema", name)
	}
	for _, s := range cat.schemas {
		if err := execIn(ctx, ddl, "", s.sql); err != nil {
			return fmt.Errorf("clone: standby %s: create schema %s: %w", r.cfg.StandbyAddr, s.name, err)
		}
	}
	for _, t := range cat.tables {
		if r.cfg.DeferIndexes {
			t.deferKeys()
		}
		if err := execIn(ctx, ddl, t.schema, t.createSQL); err != nil {
			return fmt.Errorf("clone: standby %s: create table %s: %w", r.cfg.StandbyAddr, t, err)
		}
	}
	return nil
}

// copyData runs the workers, with progress and the record updated as they
// go.
func (r *run) copyData(ctx context.Context, snap *snapshot, cat *catalog) error {
	var maxPacket int
	if err := r.standby.QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&maxPacket); err != nil {
		return fmt.Errorf("clone: standby %s: %w", r.cfg.StandbyAddr, err)
	}
	batch := min(r.cfg.BatchBytes, maxPacket/2)
	r.prog = &progress{start: time.Now()}
	for _, t := range cat.tables {
		r.prog.tables = append(r.prog.tables, &tableProgress{t: t})
	}
	chunks, err := planChunks(ctx, snap.conns[0], r.prog.tables, r.cfg.ChunkRows)
	if err != nil {
		return fmt.Errorf("clone: master %s: %w", r.cfg.MasterAddr, err)
	}
	var workers []*worker
	defer func() {
		for _, w := range workers {
			discard(w.standby)
		}
	}()
	for i, mconn := range snap.conns {
		s, err := r.standby.Conn(ctx)
		if err != nil {
			return fmt.Errorf("clone: standby %s: %w", r.cfg.StandbyAddr, err)
		}
		workers = append(workers, &worker{id: i + 1, master: mconn, standby: s, batchBytes: batch})
		if err := setup(ctx, s, standbySession); err != nil {
			return fmt.Errorf("clone: standby %s: %w", r.cfg.StandbyAddr, err)
		}
	}
	r.log.Info("copying", "tables", len(cat.tables), "chunks", len(chunks), "workers", len(workers), "batch_bytes", batch)
	stop := r.watch()
	err = copyAll(ctx, workers, chunks)
	stop(err == nil)
	if err != nil {
		return fmt.Errorf("clone: %w; nothing is marked complete: run hotstandby clone again (it starts over)", err)
	}
	for _, tp := range r.prog.tables {
		if !tp.t.transactional() {
			d := time.Duration(tp.doneNanos.Load() - tp.startedNanos.Load())
			r.warn(fmt.Sprintf("%s (%s, %s) took %s to copy: a consistent copy needs a lock on its writers that long", tp.t, tp.t.engine, formatBytes(tp.bytes.Load()), d.Round(time.Millisecond)))
		}
	}
	return nil
}

// watch reports progress and saves it to the record until the returned
// function is called.
func (r *run) watch() func(ok bool) {
	done := make(chan struct{})
	finished := make(chan struct{})
	var b *bars
	if r.cfg.Progress != nil && r.cfg.ProgressBars {
		b = newBars(r.cfg.Progress, r.prog)
	}
	go func() {
		defer close(finished)
		tick := min(200*time.Millisecond, r.cfg.SaveEvery, r.cfg.ProgressEvery)
		lastLine, lastSave := time.Now(), time.Now()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				if b != nil {
					b.update()
				} else if now.Sub(lastLine) >= r.cfg.ProgressEvery {
					lastLine = now
					r.plainLine(now)
				}
				if now.Sub(lastSave) >= r.cfg.SaveEvery {
					lastSave = now
					r.fillProgress()
					r.state.UpdatedAt = now
					if err := r.cfg.Recorder.Save(r.state); err != nil {
						r.log.Warn("progress not saved", "err", err)
					}
				}
			}
		}
	}()
	return func(ok bool) {
		close(done)
		<-finished
		if b != nil {
			b.finish(ok)
		} else {
			r.plainLine(time.Now())
		}
	}
}

func (r *run) plainLine(now time.Time) {
	line := r.prog.totals(now).line()
	if r.cfg.Progress != nil {
		fmt.Fprintln(r.cfg.Progress, line)
	} else {
		r.log.Info(line)
	}
}

func (r *run) fillProgress() {
	if r.prog == nil {
		return
	}
	t := r.prog.totals(time.Now())
	r.state.TablesDone, r.state.RowsDone, r.state.BytesDone = t.tablesDone, t.rows, t.bytes
}

// finish creates views, routines, triggers and accounts, gives the standby
// the snapshot's GTID state, and marks the clone complete.
func (r *run) finish(ctx context.Context, ddl *sql.Conn, snap *snapshot, cat *catalog, accounts []account) (Result, error) {
	fail := func(err error) (Result, error) {
		return Result{}, fmt.Errorf("clone: standby %s: %w; nothing is marked complete: run hotstandby clone again (it starts over)", r.cfg.StandbyAddr, err)
	}
	if err := createViews(ctx, ddl, cat.views); err != nil {
		return fail(err)
	}
	for _, o := range append(slices.Clone(cat.routines), cat.triggers...) {
		if err := createObject(ctx, ddl, o); err != nil {
			return fail(err)
		}
	}
	if len(accounts) > 0 {
		n, err := createAccounts(ctx, ddl, accounts, r.log)
		if err != nil {
			return fail(err)
		}
		r.log.Info("users copied", "created", n, "of", len(accounts))
	}
	// The snapshot transactions end here: the copy is done.
	for _, c := range snap.conns {
		_, _ = c.ExecContext(ctx, "COMMIT")
	}
	warn, err := setStandbyGTIDs(ctx, ddl, snap.gtidState, snap.pos.GTID.String())
	if err != nil {
		return fail(err)
	}
	if warn != "" {
		r.warn(warn)
	}
	r.fillProgress()
	r.state.UpdatedAt = time.Now()
	if err := r.cfg.Recorder.Complete(r.state); err != nil {
		return fail(fmt.Errorf("mark the clone complete: %w", err))
	}
	r.recorded = false
	res := Result{Snapshot: snap.pos, GTIDState: snap.gtidState, BlockedCommits: snap.blocked, BlockCommitWait: snap.blockCommitWait, Tables: len(cat.tables),
		Rows: r.state.RowsDone, Bytes: r.state.BytesDone, Elapsed: time.Since(r.start), Warnings: r.warnings}
	r.log.Info("clone complete", "snapshot", snap.pos.String(), "tables", res.Tables, "rows", res.Rows, "bytes", res.Bytes,
		"elapsed", res.Elapsed.Round(time.Millisecond).String(), "commits_blocked", snap.blocked.String())
	return res, nil
}
