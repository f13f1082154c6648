package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/datashift/datashift/connectors"
)

// CallbackPayload is the JSON body POSTed to a job's callbacks when a run ends.
type CallbackPayload struct {
	Job      string    `json:"job"`
	Run      string    `json:"run"`
	Status   string    `json:"status"` // succeeded or failed
	Rows     int64     `json:"rows"`
	Bytes    int64     `json:"bytes"`
	BadRows  int64     `json:"bad_rows,omitempty"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// callbackAttempts bounds the retries of one callback; with the backoff
// doubling from 500ms that is about a minute of trying.
const callbackAttempts = 7

// NotifyCallbacks POSTs the run's outcome to each of the job's callbacks
// that asked for it, retrying failures (connection errors, 5xx, 429) with
// backoff. It returns the callbacks that never got through.
func NotifyCallbacks(ctx context.Context, client *http.Client, job *Job, run *RunRecord, sleep func(context.Context, time.Duration) error) error {
	status := "success"
	if run.State != RunSucceeded {
		status = "failure"
	}
	body, err := json.Marshal(CallbackPayload{
		Job: run.Job, Run: run.ID, Status: run.State, Rows: run.Rows, Bytes: run.Bytes,
		BadRows: run.BadRows, Error: run.Error, Started: run.Started, Finished: run.Finished,
	})
	if err != nil {
		return err
	}
	var failed []string
	for _, cb := range job.Callbacks {
		if len(cb.On) > 0 && !contains(cb.On, status) {
			continue
		}
		if err := postWithRetry(ctx, client, cb.URL, body, sleep); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", connectors.Redacted(cb.URL), err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("job %q run %s: callbacks failed: %v", job.Name, run.ID, failed)
	}
	return nil
}

func postWithRetry(ctx context.Context, client *http.Client, url string, body []byte, sleep func(context.Context, time.Duration) error) error {
	backoff := 500 * time.Millisecond
	var last error
	for attempt := 0; attempt < callbackAttempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff *= 2
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			last = fmt.Errorf("HTTP %s", resp.Status)
		default:
			return fmt.Errorf("HTTP %s", resp.Status) // the receiver refuses it; retrying will not help
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", callbackAttempts, last)
}
