package engine

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// TableChecksum reads every row of a source (all of it: key, filter and
// cursor are ignored) and returns its order-independent checksum over the
// given columns (all when empty). It is how a run is verified: source and
// sink checksums match when the sink holds each source row exactly once.
func TableChecksum(ctx context.Context, typ string, cfg connectors.SourceConfig, columns []string) (connectors.Checksum, error) {
	cfg.Key, cfg.Where, cfg.Cursor = nil, "", nil
	cfg.Columns = columns
	src, err := connectors.OpenSource(ctx, typ, cfg)
	if err != nil {
		return connectors.Checksum{}, err
	}
	defer src.Close()
	var sum connectors.Checksum
	err = src.Read(ctx, connectors.Range{}, func(b arrow.RecordBatch) error {
		sum.Add(b, nil)
		return nil
	})
	if err != nil {
		return sum, fmt.Errorf("checksum of %s %s: %w", typ, cfg.Table, err)
	}
	return sum, nil
}
