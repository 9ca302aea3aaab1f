package preflight

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/ops"
	"github.com/lakesink/lakesink/sink/registry"
	"github.com/lakesink/lakesink/sink/tables"
	"github.com/lakesink/lakesink/writers/factory"
)

// probeID names this run's probe object and file.
func probeID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "validate-" + hex.EncodeToString(b)
}

// planStorage plans the lake's write probe: the backend's own start-up
// check (a missing bucket, rejected credentials), then a probe object put
// and deleted under ops.ProbePrefix, as the readiness probe does.
func planStorage(p *plan, cfg *config.Config, now func() time.Time) {
	st := cfg.Storage
	where := st.Location()
	if st.Type == config.StorageS3 && st.S3.Endpoint != "" {
		where += " at " + endpointURL(st.S3.Endpoint)
	}
	if st.Type == config.StorageGCS && st.GCS.Endpoint != "" {
		where += " at " + endpointURL(st.GCS.Endpoint)
	}
	it := p.add("storage", where, func(ctx context.Context) (string, error) {
		if st.Type == config.StorageLocal {
			if _, err := os.Stat(st.Local.Root); errors.Is(err, fs.ErrNotExist) {
				// run creates the root: can it?
				dir, err := nearestFolder(st.Local.Root)
				if err != nil {
					return "", err
				}
				if err := ops.SpoolProbe(dir, ".lakesink-"+probeID()); err != nil {
					return "", diskError(err, dir, "the lake's folder")
				}
				return fmt.Sprintf("root missing: run creates it in %s, which takes writes", dir), nil
			}
		}
		w, err := factory.New(ctx, st, nil, nil, factory.NoSetup())
		if err != nil {
			return "", storageError(err, "use", st.Location())
		}
		defer w.Close()
		key := ops.ProbePrefix + probeID()
		if err := ops.WriteProbe(ctx, w, key, now()); err != nil {
			var pe *ops.ProbeError
			if errors.As(err, &pe) && pe.Step == "delete" {
				return "", storageError(err, "delete in", st.Location())
			}
			return "", storageError(err, "write", st.Location())
		}
		return "put and deleted " + key, nil
	})
	it.timeout = minTimeout(p.timeout, time.Duration(st.Timeout))
}

// storageError words a failed storage step: the network's failures as
// explain does, an HTTP status as the credentials' or the server's
// answer, a local file system's refusal by its errno.
func storageError(err error, what, where string) error {
	if status, code := httpStatus(err); status != 0 {
		msg := statusText(status)
		if code != "" && code != http.StatusText(status) {
			msg += " (" + code + ")"
		}
		switch status {
		case http.StatusForbidden, http.StatusUnauthorized:
			return failf(err, "%s: the credentials cannot %s %s", msg, what, where)
		case http.StatusNotFound:
			return failf(err, "%s: %s does not exist", msg, where)
		}
		return failf(err, "%s: %s %s", msg, what, where)
	}
	if d := diskError(err, where, "the lake"); d != err {
		return d
	}
	return err
}

// diskError words a local file system's refusal; other errors are
// returned as they are.
func diskError(err error, dir, what string) error {
	switch {
	case errors.Is(err, syscall.EROFS):
		return failf(err, "%s %s is read-only", what, dir)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return failf(err, "%s %s is not writable by this user (permission denied)", what, dir)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return failf(err, "%s %s is full", what, dir)
	case errors.Is(err, syscall.ENOTDIR):
		return failf(err, "%s %s: a file is in the way of the folder", what, dir)
	}
	return err
}

// nearestFolder is dir or, if it does not exist, its nearest ancestor that
// does: where creating dir would start.
func nearestFolder(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && fi.IsDir():
			return dir, nil
		case err == nil:
			return "", fmt.Errorf("%s is a file, not a folder", dir)
		case !errors.Is(err, fs.ErrNotExist):
			return "", diskError(err, dir, "folder")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no folder of %s exists", dir)
		}
		dir = parent
	}
}

// planSpool plans the spool probe: a file written, synced and removed in
// the group's spool folder (or, while it does not exist, in the folder
// run would create it in), as the readiness probe does, and the free space
// there, which must hold at least one file of files.max_file_bytes.
func planSpool(p *plan, cfg *config.Config) {
	dir := filepath.Join(cfg.Files.SpoolDir, cfg.Kafka.GroupID)
	need := cfg.Files.MaxFileBytes
	p.add("spool folder", dir, func(context.Context) (string, error) {
		at, err := nearestFolder(dir)
		if err != nil {
			return "", err
		}
		if err := ops.SpoolProbe(at, ".lakesink-"+probeID()); err != nil {
			return "", diskError(err, at, "spool folder")
		}
		var sfs syscall.Statfs_t
		if err := syscall.Statfs(at, &sfs); err != nil {
			return "", fmt.Errorf("free space of %s: %w", at, err)
		}
		free := int64(uint64(sfs.Bavail) * uint64(sfs.Bsize))
		if free < need.Bytes() {
			return "", fmt.Errorf("spool folder %s has %s free, less than one file of files.max_file_bytes (%s)", at, humanBytes(free), need)
		}
		note := fmt.Sprintf("writable, %s free", humanBytes(free))
		if at != dir {
			note += "; run creates the folder in " + at
		}
		return note, nil
	})
}

// planRegistry plans, when a stream reads schemas from the registry, a
// request listing its subjects (it answers, the credentials hold) and,
// after it, the latest version of each subject a stream names.
func planRegistry(p *plan, cfg *config.Config) {
	need := false
	for _, sc := range cfg.Streams {
		need = need || sc.Format.UsesRegistry()
	}
	if !need {
		return
	}
	rc := cfg.SchemaRegistry
	client, cerr := registry.FromConfig(rc)
	timeout := minTimeout(p.timeout, time.Duration(rc.Timeout))
	reg := p.add("schema registry", endpointURL(rc.URL), func(ctx context.Context) (string, error) {
		if cerr != nil {
			return "", cerr
		}
		subjects, err := client.Subjects(ctx)
		if err != nil {
			return "", registryError(err)
		}
		return "answers: " + plural(len(subjects), "subject"), nil
	})
	reg.timeout = timeout
	for _, sc := range cfg.Streams {
		if sc.Subject == "" {
			continue
		}
		it := p.add("registry subject", sc.Subject+" (stream "+sc.Name+")", func(ctx context.Context) (string, error) {
			s, err := client.SubjectVersion(ctx, sc.Subject, -1)
			if errors.Is(err, registry.ErrNotFound) {
				return "", failf(err, "subject %s does not exist", sc.Subject)
			}
			if err != nil {
				return "", registryError(err)
			}
			return fmt.Sprintf("latest version %d, id %d, %s", s.Version, s.ID, s.SchemaType()), nil
		})
		it.timeout, it.after = timeout, reg
	}
}

// registryError words the registry's error answers.
func registryError(err error) error {
	var re *registry.Error
	if !errors.As(err, &re) {
		return withoutURL(err)
	}
	msg := statusText(re.Status)
	if re.Message != "" {
		msg += ": " + re.Message
	}
	if re.Status == http.StatusUnauthorized || re.Status == http.StatusForbidden {
		msg += ": check schema_registry.username and password"
	}
	return failf(err, "%s", msg)
}

// planTables plans a catalog probe per stream with a table
// (tables.Probe): the catalog answers, and the namespace and table load
// or are missing, for run to create.
func planTables(p *plan, cfg *config.Config) {
	for _, sc := range cfg.Streams {
		if sc.Table == nil {
			continue
		}
		c := sc.Table.Catalog
		where := string(c.Type)
		if c.URI != "" {
			where += " " + endpointURL(c.URI)
		}
		p.add("iceberg catalog", where+" ("+sc.TableIdent()+")", func(ctx context.Context) (string, error) {
			note, err := tables.Probe(ctx, sc, cfg.Storage)
			if err != nil {
				if status, _ := httpStatus(err); status == http.StatusUnauthorized || status == http.StatusForbidden {
					return "", failf(err, "%s: check the catalog's token or credentials", statusText(status))
				}
				return "", err
			}
			return note, nil
		})
	}
}

// planWebhook plans a HEAD request to the webhook with its headers — never
// a POST, which would announce an hour. It passes when the endpoint is
// reachable and takes the headers: any 2xx or 3xx, and 405 (the endpoint
// takes POST only) or another 4xx but 401, 403 and 404 (it read the
// request, and found no body to accept).
func planWebhook(p *plan, cfg *config.Config) {
	wh := cfg.Markers.Webhook
	if !cfg.Markers.Enabled || wh.URL == "" {
		return
	}
	timeout := minTimeout(p.timeout, time.Duration(wh.Timeout))
	it := p.add("webhook", endpointURL(wh.URL), func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, wh.URL, nil)
		if err != nil {
			return "", fmt.Errorf("markers.webhook.url: %w", err)
		}
		for k, v := range wh.Headers {
			if strings.EqualFold(k, "Host") {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		client := &http.Client{
			Timeout: timeout,
			// A redirect is an answer: reachable.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		defer client.CloseIdleConnections()
		resp, err := client.Do(req)
		if err != nil {
			return "", withoutURL(err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		code := resp.StatusCode
		answer := "HEAD answered " + statusText(code)
		switch {
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return "", fmt.Errorf("%s: check markers.webhook.headers", statusText(code))
		case code == http.StatusNotFound:
			return "", fmt.Errorf("%s: check markers.webhook.url", statusText(code))
		case code >= 500:
			return "", fmt.Errorf("%s: the webhook's server fails", statusText(code))
		case code >= 400:
			return answer + " (reachable; run POSTs)", nil
		}
		return answer, nil
	})
	it.timeout = timeout
}

// withoutURL words an HTTP client's error without the request's URL,
// whose query may hold a token: "HEAD: EOF" rather than
// `Head "https://hook?token=...": EOF`. The cause stays wrapped.
func withoutURL(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return failf(err, "%s: %v", strings.ToUpper(ue.Op), ue.Err)
}

// minTimeout is the shorter of a and b, ignoring b when it is not set.
func minTimeout(a, b time.Duration) time.Duration {
	if b > 0 && b < a {
		return b
	}
	return a
}
