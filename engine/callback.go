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

// CallbackPayload is the JSON body POSTed to a job's callbacks when a run
// ends. It is sent with an Idempotency-Key header, the run id and the time
// it ended: a receiver that may hear an end twice (a leader that died
// between posting and recording it) keeps the first.
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
	Duration float64   `json:"duration_seconds"`
	Trigger  string    `json:"trigger,omitempty"`
	// Ticks are the scheduled times the run stands for (a cron fire).
	Ticks *TickSpan `json:"ticks,omitempty"`
}

// callbackAttempts bounds the retries of one callback; with the backoff
// doubling from 500ms that is about a minute of trying.
const callbackAttempts = 7

// CallbackBody is the payload of a finished run's callbacks.
func CallbackBody(run *RunRecord) ([]byte, error) {
	p := CallbackPayload{
		Job: run.Job, Run: run.ID, Status: run.State, Rows: run.Rows, Bytes: run.Bytes,
		BadRows: run.BadRows, Error: run.Error, Started: run.Started, Finished: run.Finished,
		Duration: run.Finished.Sub(run.Started).Seconds(), Trigger: run.Trigger,
	}
	if run.Ticks.Count > 0 {
		p.Ticks = &run.Ticks
	}
	return json.Marshal(p)
}

// CallbackURLs are the job's callbacks that asked to hear how run ended.
func CallbackURLs(job *Job, run *RunRecord) []string {
	status := "success"
	if run.State != RunSucceeded {
		status = "failure"
	}
	var out []string
	for _, cb := range job.Callbacks {
		if len(cb.On) == 0 || contains(cb.On, status) {
			out = append(out, cb.URL)
		}
	}
	return out
}

// PostCallback POSTs a run's payload to url, retrying failures (connection
// errors, 5xx, 429) with backoff; key is the Idempotency-Key. onRetry, if
// set, hears each failure that will be retried.
func PostCallback(ctx context.Context, client *http.Client, url, key string, body []byte, sleep func(context.Context, time.Duration) error, onRetry func(attempt int, err error)) error {
	if err := postWithRetry(ctx, client, url, key, body, sleep, onRetry); err != nil {
		return fmt.Errorf("callback %s: %w", connectors.Redacted(url), err)
	}
	return nil
}

func postWithRetry(ctx context.Context, client *http.Client, url, key string, body []byte, sleep func(context.Context, time.Duration) error, onRetry func(int, error)) error {
	backoff := 500 * time.Millisecond
	var last error
	for attempt := 0; attempt < callbackAttempts; attempt++ {
		if attempt > 0 {
			if onRetry != nil {
				onRetry(attempt, last)
			}
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
		req.Header.Set("Idempotency-Key", key)
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
