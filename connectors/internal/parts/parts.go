// Package parts is the one way file sinks (parquet, csv) lay out, commit and
// resume their files, and the helpers file sources share (listing, file
// ranges, row positions).
//
// # Layout
//
// A dataset is a directory of part files, and a _datashift folder in it
// that holds the sink's commit log (connectors.CommitLog):
//
//	<dir>/<run>-<partition>-<seq><ext>                          a committed part
//	<dir>/<run>-<partition>-<seq><ext>.<lease>.tmp              a part being written
//	<dir>/_datashift/<job>+<run>+<partition>.lease              the partition's last claim
//	<dir>/_datashift/<job>+<run>+<partition>+<seq>+<lease>.json the record of commit seq
//
// Each name piece goes through SafePartition, whose output never holds '+',
// so a log file name splits back into job, run and partition exactly; seq is
// the commit's number within the partition (000001, 000002, …). Other tools
// read only the parts: Spark and pyarrow skip paths that start with '_', and
// a glob on the data extension (DuckDB's *.parquet, even **/*.parquet)
// matches neither a log file nor a .tmp part.
//
// # Committing
//
// A partition is claimed under a lease (Claim) before it writes: the lease
// file is rewritten (tmp, fsync, rename), what an earlier holder left
// unfinished is removed, and the record of the last finished commit is
// returned. A Commit then
//
//  1. finishes the part (encoder footer, fsync) under its .tmp name;
//  2. checks that the lease file still holds the writer's lease; if not
//     it removes the part and fails with connectors.ErrLeaseLost;
//  3. writes the commit record (tmp, fsync, rename, fsync of _datashift);
//  4. renames the part to its final name (the commit point) and fsyncs the
//     dataset directory.
//
// A commit with no rows has a record and no part; its record's rename is
// its commit point. After a crash a record whose part is missing is an
// unfinished commit: the next Claim removes it and the .tmp parts, and
// returns the record before it. Nothing committed is ever deleted on resume;
// the writer numbers its parts past every part and record of the partition,
// so it never overwrites one either. Once a commit has landed, the records
// it supersedes are removed: the log holds about one record per partition.
//
// Forget removes a run's records and lease files (never parts); Prepare with
// truncate removes every part of this naming and every log file.
//
// # Fencing, and its window
//
// A directory, local or shared (NFS, SMB), has no compare-and-swap rename:
// the lease check in step 2 and the renames of steps 3 and 4 are separate
// system calls, and a claim that lands between them does not stop that
// commit. The layout keeps the damage of that window bounded, not zero:
//
//   - A claim removes the partition's .tmp parts before it looks at the
//     records. A stale commit whose part rename comes after that removal
//     fails (its source is gone), so its rows never land; one whose rename
//     came before it is seen by the claim, with its record, as the last
//     finished commit: the new holder continues after it.
//   - Record names carry the lease, so a stale writer's record that lands
//     late never replaces the new holder's. It names a part that is not
//     there (the next claim removes it) or, for a commit with no rows, says
//     only what its own earlier, finished commits made true; it is never
//     numbered past the new holder's first commit, and for the same number
//     the higher lease wins.
//   - Two claims that race (both read the old lease, both write their own)
//     may leave the lower lease in the file. The coordinator's lease (its
//     checkpoint save is a Multi that checks it) is the first fence; the
//     lease file is the second, for a holder that stalled past it.
//
// What is left open: a stale commit with no rows that lands inside the
// window returns nil, so its writer cannot tell it was fenced (its record is
// true, as above); and all of this rests on rename and unlink of one path
// being atomic where the directory lives, which local file systems, NFS and
// SMB servers give, and eventually consistent object-store mounts do not.
package parts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// seqDigits is the width of the commit number in file names: fixed so that
// names sort in commit order.
const seqDigits = 6

// logFolder is the folder of a dataset that holds its commit log.
const logFolder = "_datashift"

// Layout is a dataset directory and the extension of its parts (".parquet").
type Layout struct {
	Dir string
	Ext string
}

// logDir is the dataset's commit log folder.
func (l Layout) logDir() string { return filepath.Join(l.Dir, logFolder) }

// SafePartition turns a name piece (run, partition, job) into something
// usable in a file name: anything but letters, digits, '.', '_' and '-'
// becomes '_'. Distinct pieces may map to the same text ("a/b", "a_b"); the
// log notices when two partitions of a dataset collide so.
func SafePartition(p string) string {
	if p == "" {
		return "part"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, p)
}

// names are the file name pieces of one partition.
type names struct {
	job, run, partition    string // as given
	safeJob, safeRun, safe string
}

func namesOf(job, run, partition string) names {
	return names{job: job, run: run, partition: partition,
		safeJob: SafePartition(job), safeRun: SafePartition(run), safe: SafePartition(partition)}
}

// partPrefix starts the names of the partition's parts.
func (n names) partPrefix() string { return n.safeRun + "-" + n.safe + "-" }

// PartName is the base name of commit seq's part.
func (l Layout) PartName(run, partition string, seq int) string {
	return namesOf("", run, partition).partName(l.Ext, seq)
}

func (n names) partName(ext string, seq int) string {
	return fmt.Sprintf("%s%0*d%s", n.partPrefix(), seqDigits, seq, ext)
}

func (n names) tmpPartName(ext string, seq int, lease int64) string {
	return fmt.Sprintf("%s.%d.tmp", n.partName(ext, seq), lease)
}

// logPrefix starts the names of the partition's log files.
func (n names) logPrefix() string { return n.safeJob + "+" + n.safeRun + "+" + n.safe }

func (n names) leaseName() string { return n.logPrefix() + ".lease" }

func (n names) recordName(seq int, lease int64) string {
	return fmt.Sprintf("%s+%0*d+%d.json", n.logPrefix(), seqDigits, seq, lease)
}

// partSeq parses the name of one of the partition's parts: its commit
// number, and whether it is unfinished (.tmp).
func (n names) partSeq(name, ext string) (seq int, tmp, ok bool) {
	rest, found := strings.CutPrefix(name, n.partPrefix())
	if !found {
		return 0, false, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i < seqDigits {
		return 0, false, false
	}
	seq, err := strconv.Atoi(rest[:i])
	if err != nil {
		return 0, false, false // more digits than an int holds: not ours
	}
	switch tail := rest[i:]; {
	case tail == ext:
		return seq, false, true
	case strings.HasPrefix(tail, ext+".") && strings.HasSuffix(tail, ".tmp"):
		return seq, true, true
	}
	return 0, false, false
}

// anyPart matches a part file of this layout's naming, committed or not,
// of any run and partition (parts named <partition>-<seq> by earlier
// versions included). Only such files are ever deleted from the dataset
// directory: it may hold files of other tools.
func (l Layout) anyPart() *regexp.Regexp {
	return regexp.MustCompile(`^.+-\d{` + strconv.Itoa(seqDigits) + `,}` + regexp.QuoteMeta(l.Ext) + `(\.-?\d+)?(\.tmp)?$`)
}

// anyLogFile matches every file of the commit log: records, lease files and
// their .tmp forms. It is what Prepare removes on truncate.
var anyLogFile = regexp.MustCompile(`^[^+]+\+[^+]+\+[^+]+(\+\d+\+-?\d+\.json|\.lease)(\.-?\d+)?(\.tmp)?$`)

// anyRecord splits a record's file name: job, run, partition (safe
// forms), commit number and lease.
var anyRecord = regexp.MustCompile(`^([^+]+)\+([^+]+)\+([^+]+)\+(\d+)\+(-?\d+)\.json$`)

// Check says, creating nothing, whether Prepare can make the dataset
// directory: the nearest path of it that exists must be a directory.
func (l Layout) Check() error {
	for dir := l.logDir(); ; {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("create dataset directory: %s is not a directory", dir)
		case err == nil:
			return nil
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR): // ENOTDIR: a file above it
			return fmt.Errorf("create dataset directory: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// Prepare creates the dataset directory and its log folder and, when
// truncate, removes every part of this layout's naming and every file of the
// log (other files stay).
func (l Layout) Prepare(truncate bool) error {
	if err := l.Check(); err != nil {
		return err
	}
	if err := os.MkdirAll(l.logDir(), 0o755); err != nil {
		return fmt.Errorf("create dataset directory: %w", err)
	}
	if !truncate {
		return nil
	}
	if err := removeMatching(l.Dir, l.anyPart()); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if err := removeMatching(l.logDir(), anyLogFile); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	return nil
}

// removeMatching removes the files of dir whose names re matches, and
// fsyncs dir when it removed any.
func removeMatching(dir string, re *regexp.Regexp) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		if e.IsDir() || !re.MatchString(e.Name()) {
			continue
		}
		if err := remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
		removed = true
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// remove removes path; a file already gone is no error.
func remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// writeFile writes data to dir/name through dir/tmp: write, fsync, close,
// rename, fsync of dir. After a crash dir/name holds the old content or
// the new, never a part.
func writeFile(dir, name, tmp string, data []byte) error {
	tmpPath := filepath.Join(dir, tmp)
	f, err := os.OpenFile(tmpPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		remove(tmpPath)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		remove(tmpPath)
		return err
	}
	if err := f.Close(); err != nil {
		remove(tmpPath)
		return err
	}
	if err := os.Rename(tmpPath, filepath.Join(dir, name)); err != nil {
		remove(tmpPath)
		return err
	}
	return syncDir(dir)
}
