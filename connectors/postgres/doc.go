// Package postgres is the PostgreSQL source and sink (type name "postgres"),
// built on pgx/v5's low-level pgconn so that no value is boxed on the way.
//
// Reading. Source.Read runs one
//
//	COPY (SELECT cols FROM t WHERE <range> AND (<where>) ORDER BY key) TO STDOUT (FORMAT binary)
//
// and parses the binary stream in the io.Writer it hands to pgconn.CopyTo
// (decode.go): tuples go straight into Arrow builders, sized once per batch
// from the batch before, and a record batch is handed on at BatchRows or
// BatchBytes. The callback runs inside Write, so a slow consumer stops the
// socket and the server waits. Types with no decoder here are selected as
// col::text and travel as String with datashift.sqltype (TYPES.md).
//
// Key order is byte order: text keys compare with COLLATE "C" unless the
// column's collation already is byte order (C, POSIX, C.UTF-8), in which case
// the plain column is used and its index serves the range. COPY takes no
// parameters, so range bounds are escaped literals cast to the key column's
// type (predicate.go). Tables with no key can be read by heap pages
// (Range.Pages, a TID range scan).
//
// Reading by position. Source implements connectors.PositionReader for page
// ranges, the NULL-key range and tables without a key: ReadPositioned adds
// ctid as a trailing COPY field, which the decoder takes apart (it is in no
// batch) and gives with each batch as the position of its last row,
// Key{block, offset}; such a range's After is a position and reads resume
// at ctid > After. ORDER BY ctid would sort a whole partition, so page
// ranges and keyless tables rely on the heap scan's physical order, in a
// transaction with synchronize_seqscans, parallel workers, index and bitmap
// scans off (a bitmap heap scan follows HOT chains out of line pointer
// order); the small NULL-key range is sorted by ctid. The decoder fails the
// read on a ctid that does not follow the one before. Positions index one
// version of the heap: they stay valid inside an exported snapshot, or
// while the table does not change.
//
// Writing. A Writer opens a transaction at its first Write and streams one
// COPY … FROM STDIN (FORMAT binary) through an io.Pipe to pgconn.CopyFrom;
// Write encodes a batch column by column into the target column's binary
// format (encode.go), checking each value fits (range, scale, length,
// UTF-8, NOT NULL) and failing with a connectors.ValueError naming the column
// and the row's key. Commit ends the COPY and commits it together with the
// commit record (below). Upserts, and target columns of types with no
// encoder here (inet, interval, arrays…), go through a temporary staging
// table and INSERT … SELECT [ON CONFLICT … DO UPDATE].
//
// Commit records (connectors.CommitLog, connectors/COMMITS.md). Prepare
// creates the commit table (option commit_table, default datashift_commits,
// in the target table's schema unless qualified) or checks that a table of
// that name is one. Claim takes a partition for a lease in a statement of
// its own: INSERT … ON CONFLICT DO UPDATE SET lease … WHERE lease <= the
// new one, no row back meaning a newer lease holds it (ErrLeaseLost).
// Commit, after the COPY and any merge, UPDATEs the partition's record
// WHERE its lease is still the writer's, inside the same transaction, and
// rolls everything back when that matches no row; a commit with no rows is
// the UPDATE alone. A resumed partition reads on from its record's
// position, so nothing is ever deleted from the target, and Truncate
// empties the target, never the commit table. Forget deletes a run's
// records.
//
// Planning. Source implements connectors.Sampler (pg_class estimates, pg_stats
// histograms and most common values, TABLESAMPLE, index probes; a full scan
// below 100k rows), connectors.Counter and connectors.Snapshotter
// (pg_export_snapshot, imported by readers given SourceConfig.Snapshot).
//
// Errors name the table, partition, column or key they are about; a
// password never appears in them (connectors.Redacted, and a scrub of driver
// messages). Connection failures, server shutdowns, serialization failures
// and deadlocks are marked connectors.Transient.
package postgres
