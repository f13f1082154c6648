package partitioner_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

// plainSource is a Source that cannot sample.
type plainSource struct {
	schema    *arrow.Schema
	schemaErr error
}

func (s *plainSource) Schema(context.Context) (*arrow.Schema, error) { return s.schema, s.schemaErr }
func (s *plainSource) Read(context.Context, connectors.Range, func(arrow.RecordBatch) error) error {
	return errors.New("not read in planning")
}
func (s *plainSource) Close() error { return nil }

// samplingSource also answers Stats, recording the sample size asked for.
type samplingSource struct {
	plainSource
	stats    connectors.Stats
	statsErr error
	asked    []int
}

func (s *samplingSource) Stats(_ context.Context, n int) (connectors.Stats, error) {
	s.asked = append(s.asked, n)
	return s.stats, s.statsErr
}

func schema(fields ...arrow.Field) *arrow.Schema { return arrow.NewSchema(fields, nil) }

func TestPlanSource(t *testing.T) {
	ctx := context.Background()
	idNotNull := arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64}
	idNullable := arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}
	name := arrow.Field{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true}
	stats := connectors.Stats{Rows: 1000, Min: ik(0), Max: ik(999), Sample: seq(0, 1000), Method: "fake"}

	t.Run("sampler: nullability from the schema, stats from Stats", func(t *testing.T) {
		src := &samplingSource{plainSource: plainSource{schema: schema(idNullable, name)}, stats: stats}
		p, err := partitioner.PlanSource(ctx, src, []string{"id"}, partitioner.Options{TargetRows: 250, MaxPartitions: 8})
		if err != nil {
			t.Fatal(err)
		}
		checkCovers(t, p, append(seq(-5, 1005), connectors.Key{nil}))
		if p.Scheme != "key-range" || len(p.Partitions) != 5 || !p.Key[0].Nullable {
			t.Errorf("want 4 key ranges and a NULL partition for a nullable key\n%s", describe(p))
		}
		if len(src.asked) != 1 || src.asked[0] != partitioner.DefaultSampleSize(8) {
			t.Errorf("asked for samples %v, want one of %d", src.asked, partitioner.DefaultSampleSize(8))
		}
	})
	t.Run("sample size from options", func(t *testing.T) {
		src := &samplingSource{plainSource: plainSource{schema: schema(idNotNull)}, stats: stats}
		p, err := partitioner.PlanSource(ctx, src, []string{"id"}, partitioner.Options{TargetRows: 250, MaxPartitions: 8, SampleSize: 123})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Partitions) != 4 || src.asked[0] != 123 {
			t.Errorf("asked %v, plan\n%s", src.asked, describe(p))
		}
	})
	t.Run("not a sampler: one partition, saying why", func(t *testing.T) {
		src := &plainSource{schema: schema(idNullable)}
		p, err := partitioner.PlanSource(ctx, src, []string{"id"}, partitioner.Options{TargetRows: 250, MaxPartitions: 8})
		if err != nil {
			t.Fatal(err)
		}
		checkCovers(t, p, []connectors.Key{ik(1), {nil}})
		if p.Scheme != "single" || len(p.Partitions) != 2 || !strings.Contains(p.Reason, "cannot sample") {
			t.Errorf("want a single range and the NULL partition, saying why\n%s", describe(p))
		}
	})
	t.Run("no key: pages", func(t *testing.T) {
		src := &samplingSource{plainSource: plainSource{schema: schema(name)}, stats: connectors.Stats{Rows: 1000, PageCount: 40, Method: "ctid"}}
		p, err := partitioner.PlanSource(ctx, src, nil, partitioner.Options{TargetRows: 250, MaxPartitions: 8})
		if err != nil {
			t.Fatal(err)
		}
		if p.Scheme != "pages" || len(p.Partitions) != 4 || p.Partitions[3].Range.Pages.Hi != 0 {
			t.Errorf("want 4 page ranges\n%s", describe(p))
		}
	})

	errSchema := errors.New("schema boom")
	errStats := connectors.Transient(errors.New("connection reset"))
	for _, tt := range []struct {
		name string
		src  connectors.Source
		key  []string
		opts partitioner.Options
		is   error
		says string
	}{
		{"schema error", &plainSource{schemaErr: errSchema}, []string{"id"}, partitioner.Options{MaxPartitions: 1}, errSchema, "read schema"},
		{"stats error keeps its meaning", &samplingSource{plainSource: plainSource{schema: schema(idNotNull)}, statsErr: errStats},
			[]string{"id"}, partitioner.Options{MaxPartitions: 1}, errStats, "source statistics"},
		{"unknown key column", &plainSource{schema: schema(idNotNull)}, []string{"nope"}, partitioner.Options{MaxPartitions: 1}, nil, `column "nope" not found`},
		{"bad limits", &samplingSource{plainSource: plainSource{schema: schema(idNotNull)}}, []string{"id"}, partitioner.Options{}, partitioner.ErrInvalidInput, "max partitions"},
		{"bad stats", &samplingSource{plainSource: plainSource{schema: schema(idNotNull)}, stats: connectors.Stats{Rows: 2, Min: ik(1), Max: ik(0)}},
			[]string{"id"}, partitioner.Options{MaxPartitions: 2}, partitioner.ErrInvalidInput, "above max"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := partitioner.PlanSource(ctx, tt.src, tt.key, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.says) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("error %v, want one saying %q (is %v)", err, tt.says, tt.is)
			}
			if s, ok := tt.src.(*samplingSource); ok && tt.is == partitioner.ErrInvalidInput && s.stats.Min == nil && len(s.asked) > 0 {
				t.Errorf("asked the store for statistics with limits that cannot plan")
			}
		})
	}
	if !connectors.IsTransient(func() error {
		_, err := partitioner.PlanSource(ctx, &samplingSource{plainSource: plainSource{schema: schema(idNotNull)}, statsErr: errStats}, []string{"id"}, partitioner.Options{MaxPartitions: 1})
		return err
	}()) {
		t.Error("a transient Stats error is no longer transient once wrapped")
	}
}
