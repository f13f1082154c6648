package store

// OpKind is what an Op does.
type OpKind int

const (
	OpCreate OpKind = iota + 1
	OpSet
	OpDelete
	// OpCheck writes nothing; it fails the Multi unless the node exists at
	// the version given (any version for AnyVersion). It is how a write is
	// fenced: a leader checks its election node, so a leader whose session
	// has expired (and whose election node is gone) cannot write.
	OpCheck
)

func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpCheck:
		return "check"
	}
	return "unknown op"
}

// Op is one step of a Multi. Build it with CreateOp, SetOp, DeleteOp or
// CheckOp.
type Op struct {
	Kind    OpKind
	Path    string
	Data    []byte // OpCreate, OpSet
	Flags   Flags  // OpCreate
	Version int32  // OpSet, OpDelete, OpCheck
}

func CreateOp(path string, data []byte, flags Flags) Op {
	return Op{Kind: OpCreate, Path: path, Data: data, Flags: flags}
}

func SetOp(path string, data []byte, version int32) Op {
	return Op{Kind: OpSet, Path: path, Data: data, Version: version}
}

func DeleteOp(path string, version int32) Op {
	return Op{Kind: OpDelete, Path: path, Version: version}
}

func CheckOp(path string, version int32) Op {
	return Op{Kind: OpCheck, Path: path, Version: version}
}

// OpResult is the outcome of one op of a successful Multi.
type OpResult struct {
	// Path is the node's path; for a sequential create, the name made.
	Path string
	// Stat is the new metadata after an OpSet; zero for other ops.
	Stat Stat
}
