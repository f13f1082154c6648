package parts

import (
	"context"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datashift/datashift/connectors"
)

// Encoder writes record batches into one part file in a file format.
type Encoder interface {
	Write(rec arrow.RecordBatch) error
	// Close finishes the file (footer, buffered bytes). It must not close the
	// io.Writer it was given: the Part does that after fsync.
	Close() error
}

// NewEncoder starts an encoder writing to w.
type NewEncoder func(w io.Writer) (Encoder, error)

// Writer is the connectors.Writer of a file sink: one part file per Commit.
type Writer struct {
	layout    Layout
	partition string
	committed int // parts committed so far, numbered 1..committed
	part      *Part
	enc       Encoder
	newEnc    NewEncoder
}

var _ connectors.Writer = (*Writer)(nil)

// OpenWriter restores the partition's files to spec.Resume (see Restore) and
// returns a writer that starts its next part on the first Write.
func (l Layout) OpenWriter(spec connectors.WriterSpec, newEnc NewEncoder) (*Writer, error) {
	next, err := l.Restore(spec.Partition, spec.Resume)
	if err != nil {
		return nil, err
	}
	return &Writer{layout: l, partition: spec.Partition, committed: next - 1, newEnc: newEnc}, nil
}

// Write appends rec to the current part, starting one if needed.
func (w *Writer) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if w.part == nil {
		p, err := w.layout.Create(w.partition, w.committed+1)
		if err != nil {
			return err
		}
		enc, err := w.newEnc(p.W)
		if err != nil {
			p.Abort()
			return fmt.Errorf("%s: %w", p.Path(), err)
		}
		w.part, w.enc = p, enc
	}
	if err := w.enc.Write(rec); err != nil {
		return fmt.Errorf("%s: %w", w.part.Path(), err)
	}
	return nil
}

// Commit closes the current part under its final name. With nothing written
// since the last Commit no file is made and the state is unchanged.
func (w *Writer) Commit(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if w.part != nil {
		p, enc := w.part, w.enc
		w.part, w.enc = nil, nil
		if err := enc.Close(); err != nil {
			p.Abort()
			return nil, fmt.Errorf("%s: %w", p.Path(), err)
		}
		if err := p.Commit(); err != nil {
			p.Abort()
			return nil, err
		}
		w.committed++
	}
	return State{Parts: w.committed}.Encode(), nil
}

// Close abandons an uncommitted part.
func (w *Writer) Close() error {
	if w.part == nil {
		return nil
	}
	p, enc := w.part, w.enc
	w.part, w.enc = nil, nil
	enc.Close() // release its buffers; the file goes anyway
	return p.Abort()
}
