package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A PostgreSQL source table's secondary indexes and CHECK constraints
// travel to a PostgreSQL sink in the schema's metadata, so that a table the
// sink creates gets them too. They are built after the rows are in, each
// index on a connection of its own (Complete): one sort per index, all at
// once, instead of every index kept up to date row by row.

// metaObjects is the schema metadata key of the source table's objects
// (tableObjects, JSON).
const metaObjects = "datashift.postgres.objects"

// tableObjects are what a created table gets after its rows are in.
type tableObjects struct {
	Indexes  []indexDef   `json:"indexes,omitempty"`
	Checks   []checkDef   `json:"checks,omitempty"`
	Defaults []defaultDef `json:"defaults,omitempty"`
}

// defaultDef is a column's default expression (pg_get_expr).
type defaultDef struct {
	Column string `json:"column"`
	Expr   string `json:"expr"`
}

// indexDef is a source table's index: its name there, and its definition
// from USING on (pg_get_indexdef), which names columns, not the table.
type indexDef struct {
	Name   string `json:"name"`
	Unique bool   `json:"unique,omitempty"`
	Using  string `json:"using"`
}

// checkDef is a CHECK constraint: its name and pg_get_constraintdef.
type checkDef struct {
	Name string `json:"name"`
	Def  string `json:"def"`
}

// createSQL makes ix on table under name, unless a relation of that
// name is there.
func (ix indexDef) createSQL(name, table string) string {
	unique := ""
	if ix.Unique {
		unique = "UNIQUE "
	}
	return "CREATE " + unique + "INDEX IF NOT EXISTS " + quoteIdent(name) + " ON " + table + " " + ix.Using
}

func (o tableObjects) empty() bool {
	return len(o.Indexes) == 0 && len(o.Checks) == 0 && len(o.Defaults) == 0
}

// readTableObjects reads the indexes (but the primary key, which the sink
// makes from the job's key), CHECK constraints and column defaults of table
// oid that involve only the copied columns (an index or check on a column
// the job leaves out could not be made on the sink's table) and only what
// PostgreSQL has built in (builtinOnly).
func readTableObjects(ctx context.Context, conn *pgx.Conn, oid uint32, copied []column) (tableObjects, error) {
	var o tableObjects
	have := make(map[int16]bool, len(copied))
	for _, c := range copied {
		have[c.attnum] = true
	}
	covered := func(attnums []int16) bool {
		for _, a := range attnums {
			if !have[a] {
				return false
			}
		}
		return true
	}
	// An index depends on each column it names, in its keys, expressions
	// or predicate (pg_depend).
	rows, err := conn.Query(ctx, `SELECT c.relname, i.indisunique, substring(pg_get_indexdef(i.indexrelid) from ' USING .*$'),
  coalesce((SELECT array_agg(DISTINCT d.refobjsubid) FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
      AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid > 0), '{}')::int2[]
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = $1 AND NOT i.indisprimary AND NOT i.indisexclusion AND i.indisvalid
  AND `+builtinOnly("'pg_class'::regclass", "i.indexrelid", "i.indrelid")+`
ORDER BY c.relname`, oid)
	if err != nil {
		return o, fmt.Errorf("read indexes: %w", err)
	}
	var idx indexDef
	var attnums []int16
	_, err = pgx.ForEachRow(rows, []any{&idx.Name, &idx.Unique, &idx.Using, &attnums}, func() error {
		if covered(attnums) {
			idx.Using = strings.TrimPrefix(idx.Using, " ")
			o.Indexes = append(o.Indexes, idx)
		}
		return nil
	})
	if err != nil {
		return o, fmt.Errorf("read indexes: %w", err)
	}
	rows, err = conn.Query(ctx, `SELECT conname, pg_get_constraintdef(oid), coalesce(conkey, '{}')
FROM pg_constraint WHERE conrelid = $1 AND contype = 'c'
  AND `+builtinOnly("'pg_constraint'::regclass", "oid", "conrelid")+`
ORDER BY conname`, oid)
	if err != nil {
		return o, fmt.Errorf("read check constraints: %w", err)
	}
	var chk checkDef
	_, err = pgx.ForEachRow(rows, []any{&chk.Name, &chk.Def, &attnums}, func() error {
		if covered(attnums) {
			o.Checks = append(o.Checks, chk)
		}
		return nil
	})
	if err != nil {
		return o, fmt.Errorf("read check constraints: %w", err)
	}
	// Defaults that draw from a sequence (serial, identity) are the source
	// database's own and stay there (builtinOnly).
	rows, err = conn.Query(ctx, `SELECT a.attname, pg_get_expr(d.adbin, d.adrelid), a.attnum
FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE d.adrelid = $1 AND a.attgenerated = '' AND a.attidentity = ''
  AND `+builtinOnly("'pg_attrdef'::regclass", "d.oid", "d.adrelid")+`
ORDER BY a.attnum`, oid)
	if err != nil {
		return o, fmt.Errorf("read column defaults: %w", err)
	}
	var def defaultDef
	var attnum int16
	_, err = pgx.ForEachRow(rows, []any{&def.Column, &def.Expr, &attnum}, func() error {
		if have[attnum] {
			o.Defaults = append(o.Defaults, def)
		}
		return nil
	})
	if err != nil {
		return o, fmt.Errorf("read column defaults: %w", err)
	}
	return o, nil
}

// builtinOnly is the SQL condition that the object objid (of catalog
// classid) depends on nothing but its table and what PostgreSQL has
// built in (OIDs under 16384, FirstNormalObjectId), or on a constraint of
// its own (a unique constraint's index): a sequence, a function, a type,
// an operator class or a collation of the source database's, or of an
// extension, may not be in the target's, and the object stays behind.
func builtinOnly(classid, objid, table string) string {
	return `NOT EXISTS (SELECT 1 FROM pg_depend p WHERE p.classid = ` + classid + ` AND p.objid = ` + objid + `
    AND p.refobjid >= 16384 AND p.refobjid <> ` + table + ` AND p.refclassid <> 'pg_constraint'::regclass)`
}

// withObjects puts o in schema's metadata.
func withObjects(schema *arrow.Schema, o tableObjects) (*arrow.Schema, error) {
	if o.empty() {
		return schema, nil
	}
	data, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	md := arrow.NewMetadata([]string{metaObjects}, []string{string(data)})
	return arrow.NewSchema(schema.Fields(), &md), nil
}

// objectsOf reads the objects a PostgreSQL source put in schema's metadata
// (none from other sources).
func objectsOf(schema *arrow.Schema) (tableObjects, error) {
	var o tableObjects
	md := schema.Metadata()
	v, ok := md.GetValue(metaObjects)
	if !ok {
		return o, nil
	}
	if err := json.Unmarshal([]byte(v), &o); err != nil {
		return o, fmt.Errorf("the source's indexes in the schema: %w", err)
	}
	return o, nil
}

// deferred is what a table waits for until its rows are in, kept in the
// table's comment (Complete builds it): for a table the sink created
// (create), its key's constraint and the source's indexes and checks; for
// one that was there, empty, when the run began (deferOwnIndexes), the
// indexes it had, and its comment.
type deferred struct {
	// Mark is deferredMark: the comment is this sink's.
	Mark string `json:"datashift"`
	Key  bool   `json:"key,omitempty"`
	tableObjects
	Own     []ownIndex `json:"own,omitempty"`
	Comment *string    `json:"comment,omitempty"`
}

// ownIndex is an index of a table the sink did not create, under its own
// name; Constraint is "PRIMARY KEY" or "UNIQUE" when the index was that
// constraint's, of the same name.
type ownIndex struct {
	indexDef
	Constraint string `json:"constraint,omitempty"`
}

// deferredMark marks a table's comment as written by create or
// deferOwnIndexes.
const deferredMark = "to build once the rows are in"

// deferOwnIndexes drops, from a table the sink did not create and that is
// empty as the run begins, the indexes a build after the rows can make as
// they were, and keeps them in the table's mark for Complete: the rows load
// into the bare heap, and each index is sorted once, over all of them,
// beside the others, instead of kept up to date row by row (pgloader's
// "drop indexes", pg_restore's order).
//
// An index stays when it cannot be made again as it was, or when loading
// without it could let in what it refuses: one another object depends on
// (a foreign key), one of another constraint (exclusion, deferrable), the
// replica identity or clustering index, one in a tablespace of its own,
// a partitioned table's, and a unique index on anything but the job's key,
// which the run writes once per row. One that was a constraint is made
// that constraint again.
//
// A table in use (the lock waits at most lockWait for it), or one the
// job's user may write into but not alter, is loaded with its indexes as
// it is.
func (s *Sink) deferOwnIndexes(ctx context.Context, conn *pgx.Conn, keyAttnums []int16) error {
	err := s.dropOwnIndexes(ctx, conn, keyAttnums)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "55P03" || pe.Code == "42501") { // lock_not_available, insufficient_privilege
		return nil
	}
	return err
}

func (s *Sink) dropOwnIndexes(ctx context.Context, conn *pgx.Conn, keyAttnums []int16) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = "+strconv.Itoa(int(lockWait.Milliseconds()))); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+s.what+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return err
	}
	if d, err := readDeferred(ctx, tx, s.what); err != nil || d != nil {
		return err
	}
	if empty, err := isEmpty(ctx, tx, s.what); err != nil || !empty {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT n.nspname, c.relname, i.indisunique, substring(pg_get_indexdef(i.indexrelid) from ' USING .*$'),
  coalesce((SELECT CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END FROM pg_constraint k
    WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid), '')
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class t ON t.oid = i.indrelid
WHERE i.indrelid = to_regclass($1) AND t.relkind = 'r' AND NOT t.relispartition
  AND i.indisvalid AND i.indisready AND i.indislive AND NOT i.indisexclusion AND NOT i.indisreplident AND NOT i.indisclustered
  AND c.reltablespace = 0
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indexrelid AND d.deptype = 'n')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
    AND (k.contype NOT IN ('p', 'u') OR k.condeferrable OR k.conname <> c.relname))
  AND (NOT i.indisunique OR (cardinality($2::int2[]) > 0 AND i.indpred IS NULL AND i.indexprs IS NULL
    AND i.indnkeyatts = cardinality($2::int2[]) AND (i.indkey::int2[])[0:i.indnkeyatts - 1] @> $2::int2[]))
ORDER BY c.relname`, s.what, keyAttnums)
	if err != nil {
		return fmt.Errorf("read the table's indexes: %w", err)
	}
	var (
		own     []ownIndex
		drops   []string
		ix      ownIndex
		nspname string
	)
	_, err = pgx.ForEachRow(rows, []any{&nspname, &ix.Name, &ix.Unique, &ix.Using, &ix.Constraint}, func() error {
		ix.Using = strings.TrimPrefix(ix.Using, " ")
		own = append(own, ix)
		if ix.Constraint != "" {
			drops = append(drops, "ALTER TABLE "+s.what+" DROP CONSTRAINT "+quoteIdent(ix.Name))
		} else {
			drops = append(drops, "DROP INDEX "+pgx.Identifier{nspname, ix.Name}.Sanitize())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the table's indexes: %w", err)
	}
	if len(own) == 0 {
		return nil
	}
	d := deferred{Mark: deferredMark, Own: own}
	if err := tx.QueryRow(ctx, "SELECT obj_description(to_regclass($1), 'pg_class')", s.what).Scan(&d.Comment); err != nil {
		return err
	}
	if err := setMark(ctx, tx, s.what, &d); err != nil {
		return err
	}
	for _, sql := range drops {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// isEmpty reports whether table has no rows.
func isEmpty(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table string) (bool, error) {
	var empty bool
	err := q.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM "+table+")").Scan(&empty)
	return empty, err
}

// lockWait is how long deferOwnIndexes waits for a table in use.
const lockWait = 5 * time.Second

// setMark writes d as table's comment, the mark readDeferred reads.
func setMark(ctx context.Context, tx pgx.Tx, table string, d *deferred) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	mark, err := quoteLiteral(string(data))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "COMMENT ON TABLE "+table+" IS "+mark)
	return err
}

// readDeferred reads what table waits for; nil when its comment is not
// the sink's mark.
func readDeferred(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table string) (*deferred, error) {
	var comment *string
	if err := q.QueryRow(ctx, "SELECT obj_description(to_regclass($1), 'pg_class')", table).Scan(&comment); err != nil {
		return nil, err
	}
	if comment == nil {
		return nil, nil
	}
	var d deferred
	if json.Unmarshal([]byte(*comment), &d) != nil || d.Mark != deferredMark {
		return nil, nil
	}
	return &d, nil
}

// buildIndexes builds the key's unique index (when keyIndex is not ""),
// the table's own indexes and the source's, each on a connection of its
// own, at most four at once. Each is made under a name of the target
// table's; one that is there already (a build that a crash interrupted
// was rolled back, so one that is there is whole) is left as it is.
func (s *Sink) buildIndexes(ctx context.Context, keyIndex string, d *deferred) error {
	type build struct{ what, name, ddl string }
	var builds []build
	names := map[string]bool{}
	if keyIndex != "" {
		names[keyIndex] = true
		q := make([]string, len(s.cfg.Key))
		for i, k := range s.cfg.Key {
			q[i] = quoteIdent(k)
		}
		builds = append(builds, build{"the key's index", keyIndex, "CREATE UNIQUE INDEX IF NOT EXISTS " + quoteIdent(keyIndex) + " ON " + s.what + " (" + strings.Join(q, ", ") + ")"})
	}
	for _, ix := range d.Own {
		names[ix.Name] = true
		builds = append(builds, build{"index " + ix.Name, ix.Name, ix.createSQL(ix.Name, s.what)})
	}
	for _, ix := range d.Indexes {
		name := indexName(s.name[len(s.name)-1], ix.Name, names)
		builds = append(builds, build{fmt.Sprintf("index %s (the source's %s)", name, ix.Name), name, ix.createSQL(name, s.what)})
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 4)
	)
	for _, b := range builds {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := s.buildIndex(ctx, b.name, b.ddl); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("build %s: %w", b.what, withDetail(err)))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// buildIndex runs ddl, a CREATE INDEX IF NOT EXISTS name, on a connection
// of its own, and makes sure the index of that name is the target table's:
// IF NOT EXISTS passes over a relation of that name that is something
// else, which must not go unsaid.
func (s *Sink) buildIndex(ctx context.Context, name, ddl string) error {
	conn, err := s.conn.get(ctx)
	if err != nil {
		return err
	}
	ours, err := func() (*bool, error) {
		if _, err := conn.Exec(ctx, ddl); err != nil {
			return nil, err
		}
		var ours *bool
		err := conn.QueryRow(ctx, `SELECT (SELECT i.indrelid = to_regclass($2) FROM pg_index i WHERE i.indexrelid = c.oid)
FROM pg_class c WHERE c.relname = $1 AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass($2))`, name, s.what).Scan(&ours)
		return ours, err
	}()
	if err != nil {
		s.conn.discard(conn)
		return err
	}
	s.conn.put(conn)
	if ours == nil || !*ours {
		return fmt.Errorf("%s names another table's index, or a relation that is not an index, in the table's schema", quoteIdent(name))
	}
	return nil
}

// indexName is the name of the target table's copy of the source's index:
// the table's name and the index's, cut to PostgreSQL's 63 bytes and made
// unique among taken (the names given so far).
func indexName(table, index string, taken map[string]bool) string {
	base := table + "_" + index
	name := truncateIdent(base, 63)
	for i := 2; taken[name]; i++ {
		suffix := fmt.Sprintf("_%d", i)
		name = truncateIdent(base, 63-len(suffix)) + suffix
	}
	taken[name] = true
	return name
}

// truncateIdent cuts s to at most n bytes, at a character boundary.
func truncateIdent(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// withDetail adds PostgreSQL's detail (which key repeats) to err.
func withDetail(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Detail != "" {
		return fmt.Errorf("%w (%s)", err, pe.Detail)
	}
	return err
}

// setDefaults gives table's columns the source's defaults.
func setDefaults(ctx context.Context, tx pgx.Tx, table string, defaults []defaultDef) error {
	for _, d := range defaults {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+table+" ALTER COLUMN "+quoteIdent(d.Column)+" SET DEFAULT "+d.Expr); err != nil {
			return fmt.Errorf("set the source's default of column %s: %w", d.Column, withDetail(err))
		}
	}
	return nil
}

// addConstraints makes each of a table's own indexes that was a
// constraint that constraint again, unless it is.
func addConstraints(ctx context.Context, tx pgx.Tx, table string, own []ownIndex) error {
	for _, ix := range own {
		if ix.Constraint == "" {
			continue
		}
		var there bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)", table, ix.Name).Scan(&there); err != nil {
			return err
		}
		if there {
			continue
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+table+" ADD CONSTRAINT "+quoteIdent(ix.Name)+" "+ix.Constraint+" USING INDEX "+quoteIdent(ix.Name)); err != nil {
			return fmt.Errorf("add the table's %s %s: %w", ix.Constraint, ix.Name, withDetail(err))
		}
	}
	return nil
}

// addChecks adds the source's CHECK constraints that table has not got.
func addChecks(ctx context.Context, tx pgx.Tx, table string, checks []checkDef) error {
	for _, c := range checks {
		var there bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2)", table, c.Name).Scan(&there); err != nil {
			return err
		}
		if there {
			continue
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+table+" ADD CONSTRAINT "+quoteIdent(c.Name)+" "+c.Def); err != nil {
			return fmt.Errorf("add the source's check %s: %w", c.Name, withDetail(err))
		}
	}
	return nil
}

// keyIndexName is the name of the index a created table's key gets:
// PostgreSQL's own for a primary key.
func keyIndexName(table string, nullable bool) string {
	suffix := "_pkey"
	if nullable {
		suffix = "_key"
	}
	return truncateIdent(table, 63-len(suffix)) + suffix
}
