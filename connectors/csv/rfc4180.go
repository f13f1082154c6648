package csv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Go's encoding/csv cannot tell a quoted empty field from an empty one, and
// arrow/csv builds on it, so neither can keep NULL ("") apart from the empty
// string (""""). This reader and writer are RFC 4180 with that one addition:
// each field says whether it was quoted.

// recordReader reads RFC 4180 records: fields separated by delim, records by
// CRLF or LF, fields optionally in double quotes with "" for a quote inside.
// A quote inside an unquoted field is taken as it is.
type recordReader struct {
	br    *bufio.Reader
	delim byte
	line  int // lines read so far

	buf    []byte // the current record's field bytes, back to back
	ends   []int  // end offset of each field in buf
	quoted []bool
	fields []string
}

func newRecordReader(r io.Reader, delim byte) *recordReader {
	return &recordReader{br: bufio.NewReaderSize(r, 256<<10), delim: delim}
}

// errSyntax is wrapped by every malformed-input error.
var errSyntax = errors.New("malformed CSV")

// readLine returns the next line including its line ending, or io.EOF.
func (r *recordReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A line longer than the buffer: gather it.
		full := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = r.br.ReadSlice('\n')
			full = append(full, line...)
		}
		line = full
	}
	if len(line) > 0 && errors.Is(err, io.EOF) {
		err = nil // a last line with no line ending
	}
	if len(line) > 0 {
		r.line++
	}
	return line, err
}

// Read returns the next record's fields (valid until the next Read), which
// of them were quoted, and the line the record starts on. Blank lines are
// returned as one empty unquoted field; the caller decides what they mean.
func (r *recordReader) Read() (fields []string, quoted []bool, startLine int, err error) {
	line, err := r.readLine()
	if err != nil {
		return nil, nil, 0, err
	}
	startLine = r.line
	r.buf, r.ends, r.quoted = r.buf[:0], r.ends[:0], r.quoted[:0]
	for {
		// At the start of a field.
		if len(line) == 0 || line[0] != '"' {
			i := bytes.IndexByte(line, r.delim)
			if i < 0 {
				r.buf = append(r.buf, trimEOL(line)...)
				r.ends = append(r.ends, len(r.buf))
				r.quoted = append(r.quoted, false)
				break
			}
			r.buf = append(r.buf, line[:i]...)
			r.ends = append(r.ends, len(r.buf))
			r.quoted = append(r.quoted, false)
			line = line[i+1:]
			continue
		}
		// A quoted field, possibly across lines.
		line = line[1:]
		for {
			i := bytes.IndexByte(line, '"')
			if i >= 0 {
				r.buf = append(r.buf, line[:i]...)
				line = line[i+1:]
				if len(line) > 0 && line[0] == '"' {
					r.buf = append(r.buf, '"')
					line = line[1:]
					continue
				}
				break // closing quote
			}
			// The field goes on to the next line; the line break is data.
			r.buf = append(r.buf, line...)
			next, err := r.readLine()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return nil, nil, 0, fmt.Errorf("line %d: %w: quoted field not closed before the end of the file", startLine, errSyntax)
				}
				return nil, nil, 0, err
			}
			line = next
		}
		r.ends = append(r.ends, len(r.buf))
		r.quoted = append(r.quoted, true)
		switch {
		case len(line) == 0:
		case line[0] == r.delim:
			line = line[1:]
			continue
		case len(trimEOL(line)) == 0:
		default:
			return nil, nil, 0, fmt.Errorf("line %d: %w: text after a closing quote", r.line, errSyntax)
		}
		break
	}
	s := string(r.buf)
	r.fields = r.fields[:0]
	prev := 0
	for _, e := range r.ends {
		r.fields = append(r.fields, s[prev:e])
		prev = e
	}
	return r.fields, r.quoted, startLine, nil
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// appendField appends one field, quoted when it must be: it holds the
// delimiter, a quote or a line break, or must not be read as NULL (an empty
// text, or a text equal to the NULL marker).
func appendField(dst []byte, text []byte, delim byte, null string) []byte {
	need := len(text) == 0 || string(text) == null
	if !need {
		for _, c := range text {
			if c == delim || c == '"' || c == '\n' || c == '\r' {
				need = true
				break
			}
		}
	}
	if !need {
		return append(dst, text...)
	}
	dst = append(dst, '"')
	for {
		i := bytes.IndexByte(text, '"')
		if i < 0 {
			break
		}
		dst = append(dst, text[:i+1]...)
		dst = append(dst, '"')
		text = text[i+1:]
	}
	dst = append(dst, text...)
	return append(dst, '"')
}
