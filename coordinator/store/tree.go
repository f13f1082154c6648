package store

import (
	"context"
	"errors"
	"fmt"
)

// CreateAll creates path with data and flags, first creating any missing
// parents as empty persistent nodes. It fails with ErrNodeExists if path
// itself exists; parents that exist, or that another session creates
// meanwhile, are fine.
func CreateAll(ctx context.Context, w Writer, path string, data []byte, flags Flags) (string, error) {
	// Optimistic: in the common case the parents are there and this is one
	// round trip. Retried because a concurrent DeleteAll may remove a parent
	// between our creating it and using it.
	for attempt := 0; ; attempt++ {
		made, err := w.Create(ctx, path, data, flags)
		if !errors.Is(err, ErrNoNode) || attempt == 5 {
			return made, err
		}
		if err := createParents(ctx, w, Parent(path)); err != nil {
			return "", err
		}
	}
}

func createParents(ctx context.Context, w Writer, dir string) error {
	if dir == "/" {
		return nil
	}
	_, err := w.Create(ctx, dir, nil, 0)
	if errors.Is(err, ErrNoNode) {
		if err := createParents(ctx, w, Parent(dir)); err != nil {
			return err
		}
		_, err = w.Create(ctx, dir, nil, 0)
	}
	if err != nil && !errors.Is(err, ErrNodeExists) {
		return fmt.Errorf("create parent: %w", err)
	}
	return nil
}

// DeleteAll deletes path and everything below it, children first. A path
// that does not exist is not an error: the goal is that it is gone. For "/"
// it deletes everything below the root, which stays. Not atomic: another
// session may see a partly deleted tree, and nodes created below path while
// DeleteAll runs are deleted too, or make it fail with ErrNotEmpty after a
// few attempts.
func DeleteAll(ctx context.Context, rw ReadWriter, path string) error {
	for attempt := 0; ; attempt++ {
		kids, err := rw.Children(ctx, path)
		if errors.Is(err, ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := DeleteAll(ctx, rw, Join(path, k)); err != nil {
				return err
			}
		}
		if path == "/" {
			return nil
		}
		err = rw.Delete(ctx, path, AnyVersion)
		if err == nil || errors.Is(err, ErrNoNode) {
			return nil
		}
		if !errors.Is(err, ErrNotEmpty) || attempt == 5 {
			return err
		}
	}
}
