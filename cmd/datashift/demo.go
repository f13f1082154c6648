package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/engine"
	"github.com/datashift/datashift/internal/demodata"
)

func demoCmd() *cobra.Command {
	var (
		rows  int64
		dir   string
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Copy a generated SQLite table to Parquet and to SQLite in parallel partitions, and verify it (no servers needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), cmd, rows, dir, quiet)
		},
	}
	cmd.Flags().Int64Var(&rows, "rows", 1_000_000, "rows in the generated source table")
	cmd.Flags().StringVar(&dir, "dir", ".datashift/demo", "folder for the demo's files (emptied first)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bars")
	return cmd
}

func runDemo(ctx context.Context, cmd *cobra.Command, rows int64, dir string, quiet bool) error {
	w := cmd.ErrOrStderr()
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	source := filepath.Join(dir, "source.sqlite")
	start := time.Now()
	if err := demodata.Generate(ctx, source, rows); err != nil {
		return fmt.Errorf("generate demo source: %w", err)
	}
	fmt.Fprintf(w, "demo: generated %s with %d rows in %s\n", source, rows, time.Since(start).Round(time.Millisecond))

	target := rows / 8
	jobs := []*engine.Job{
		{
			Name:       "demo-to-parquet",
			Source:     engine.SourceSpec{Type: "sqlite", DSN: source, Table: "orders", Key: []string{"id"}},
			Sink:       engine.SinkSpec{Type: "parquet", DSN: filepath.Join(dir, "orders.parquet.d"), Mode: connectors.Truncate},
			Partitions: engine.PartitionSpec{TargetRows: max(target, 1)},
		},
		{
			Name:       "demo-to-sqlite",
			Source:     engine.SourceSpec{Type: "sqlite", DSN: source, Table: "orders", Key: []string{"id"}},
			Sink:       engine.SinkSpec{Type: "sqlite", DSN: filepath.Join(dir, "target.sqlite"), Table: "orders", Mode: connectors.Truncate, CreateTable: true},
			Partitions: engine.PartitionSpec{TargetRows: max(target, 1)},
		},
	}
	want, err := engine.TableChecksum(ctx, "sqlite", connectors.SourceConfig{DSN: source, Table: "orders"}, nil)
	if err != nil {
		return err
	}
	for _, job := range jobs {
		job.Normalize()
		if err := job.Validate(); err != nil {
			return err
		}
		state, closeState, err := openJobState(filepath.Join(dir, "state"), job.Name)
		if err != nil {
			return err
		}
		_, err = runJob(ctx, job, state, w, quiet, false, 0)
		closeState()
		if err != nil {
			return err
		}
		check := connectors.SourceConfig{DSN: job.Sink.DSN, Table: job.Sink.Table}
		got, err := engine.TableChecksum(ctx, job.Sink.Type, check, nil)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("demo: %s: sink holds %v, source %v", job.Name, got, want)
		}
		fmt.Fprintf(w, "demo: %s verified: sink = source, %v\n", job.Name, got)
	}
	fmt.Fprintf(w, "demo: done in %s; files in %s\n", time.Since(start).Round(time.Millisecond), dir)
	return nil
}
