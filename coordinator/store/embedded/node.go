package embedded

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/datashift/datashift/coordinator/store"
)

var be = binary.BigEndian

type node struct {
	data              []byte
	version, cversion int32
	owner             int64 // session ID for an ephemeral node, else 0
	ctime, mtime      int64 // Unix milliseconds, as ZooKeeper keeps them
	children          map[string]struct{}
}

func (n *node) stat() store.Stat {
	return store.Stat{
		Version:        n.version,
		CVersion:       n.cversion,
		EphemeralOwner: n.owner,
		DataLength:     len(n.data),
		NumChildren:    len(n.children),
		Ctime:          time.UnixMilli(n.ctime),
		Mtime:          time.UnixMilli(n.mtime),
	}
}

// On disk: format byte, version, cversion, owner, ctime, mtime, data.
// Children are not stored; they follow from the paths.
const (
	nodeFormat = 1
	headerLen  = 1 + 4 + 4 + 8 + 8 + 8
)

func (n *node) encode() []byte {
	b := make([]byte, headerLen+len(n.data))
	b[0] = nodeFormat
	be.PutUint32(b[1:], uint32(n.version))
	be.PutUint32(b[5:], uint32(n.cversion))
	be.PutUint64(b[9:], uint64(n.owner))
	be.PutUint64(b[17:], uint64(n.ctime))
	be.PutUint64(b[25:], uint64(n.mtime))
	copy(b[headerLen:], n.data)
	return b
}

func decodeNode(b []byte) (*node, error) {
	if len(b) < headerLen || b[0] != nodeFormat {
		return nil, errors.New("unknown record format")
	}
	n := &node{
		version:  int32(be.Uint32(b[1:])),
		cversion: int32(be.Uint32(b[5:])),
		owner:    int64(be.Uint64(b[9:])),
		ctime:    int64(be.Uint64(b[17:])),
		mtime:    int64(be.Uint64(b[25:])),
		children: make(map[string]struct{}),
	}
	if len(b) > headerLen {
		n.data = append([]byte(nil), b[headerLen:]...)
	}
	return n, nil
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
