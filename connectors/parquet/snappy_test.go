package parquet

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	refsnappy "github.com/golang/snappy"

	"github.com/apache/arrow-go/v18/parquet/compress"
)

// TestSnappyIsTheReferenceFormat: what the Snappy codec writes, the
// reference Go decoder reads back byte for byte, so other tools read the
// files; and it is the codec Parquet files are written with.
func TestSnappyIsTheReferenceFormat(t *testing.T) {
	codec, err := compress.GetCodec(compress.Codecs.Snappy)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := codec.(fastSnappy); !ok {
		t.Fatalf("the Snappy codec is %T, not fastSnappy", codec)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300_000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text bytes.Buffer
	for i := range 20_000 {
		fmt.Fprintf(&text, "order note %d — café crème ☕ %x\n", i, rng.Uint64())
	}
	for name, in := range map[string][]byte{
		"empty": {}, "one byte": {7}, "zeros": make([]byte, 1<<20),
		"random": random, "text": text.Bytes(),
	} {
		enc := codec.Encode(nil, in)
		if int64(len(enc)) > codec.CompressBound(int64(len(in))) {
			t.Errorf("%s: %d bytes encoded, over the bound %d", name, len(enc), codec.CompressBound(int64(len(in))))
		}
		out, err := refsnappy.Decode(nil, enc)
		if err != nil {
			t.Errorf("%s: the reference decoder refused it: %v", name, err)
			continue
		}
		if !bytes.Equal(out, in) {
			t.Errorf("%s: decoded %d bytes differ from the %d written", name, len(out), len(in))
		}
		if back := codec.Decode(make([]byte, len(in)), enc); !bytes.Equal(back, in) {
			t.Errorf("%s: the codec's own decode differs", name)
		}
	}
}
