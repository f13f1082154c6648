package partitioner_test

import (
	"strings"
	"testing"

	"github.com/datashift/datashift/connectors"
	"github.com/datashift/datashift/partitioner"
)

// A table the target size leaves in fewer partitions than there are
// workers is split one partition per worker, none under MinWorkerRows
// rows; the target still decides when it asks for more, and
// MaxPartitions still caps.
func TestSplitKeepsWorkersBusy(t *testing.T) {
	key := []partitioner.KeyColumn{{Name: "id"}}
	stats := func(rows int64) connectors.Stats {
		st := connectors.Stats{Rows: rows, Min: ik(1), Max: ik(rows), Method: "test"}
		for i := int64(1); i <= 1000; i++ {
			st.Sample = append(st.Sample, ik(i*rows/1000))
		}
		return st
	}
	for _, tt := range []struct {
		name               string
		rows, target       int64
		workers, max, want int
		reason             string
	}{
		{"300k rows, default target, 4 workers", 300000, 500000, 4, 64, 4, "~300000 rows / target 500000 rows, raised to 4 to keep 4 workers busy (at least 10000 rows each)"},
		{"300k rows, 200 workers", 300000, 500000, 200, 64, 30, "raised to 30 to keep 200 workers busy (at least 10000 rows each)"},
		{"15k rows: one worker's worth", 15000, 500000, 4, 64, 1, "one key range (~15000 rows / target 500000 rows)"},
		{"target asks for more", 300000, 10000, 4, 64, 30, "~300000 rows / target 10000 rows"},
		{"capped", 300000, 500000, 16, 8, 8, "raised to 16 to keep 16 workers busy (at least 10000 rows each) wants 16, capped at 8"},
		{"no workers given", 300000, 500000, 0, 64, 1, "one key range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := partitioner.Split(partitioner.Input{Key: key, Stats: stats(tt.rows), TargetRows: tt.target, MaxPartitions: tt.max, Workers: tt.workers})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Partitions) != tt.want || !strings.Contains(p.Reason, tt.reason) {
				t.Fatalf("%d partitions (%s), want %d (%s)", len(p.Partitions), p.Reason, tt.want, tt.reason)
			}
		})
	}
}
