package preflight

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/api/googleapi"
)

// Write prints checks as an aligned table — DEPENDENCY, ENDPOINT, TIME,
// RESULT; the result last, as it is the one column of any length — and a
// closing line counting them. Each result starts with its status: "ok",
// "FAIL" or "skipped".
func Write(w io.Writer, checks []Check) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPENDENCY\tENDPOINT\tTIME\tRESULT")
	var ok, failed, skipped int
	for _, c := range checks {
		switch c.Status {
		case Passed:
			ok++
		case Failed:
			failed++
		default:
			skipped++
		}
		result := c.Status.String()
		if c.Result != "" {
			result += ": " + c.Result
		}
		took := "-"
		if c.Status != Skipped {
			took = formatTook(c.Took)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cell(c.Dependency), cell(c.Endpoint), took, oneLine(result))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var err error
	if failed == 0 {
		_, err = fmt.Fprintf(w, "\nall %d checks passed\n", ok)
	} else {
		_, err = fmt.Fprintf(w, "\n%d of %d checks failed (%d ok, %d skipped)\n", failed, len(checks), ok, skipped)
	}
	return err
}

// cell keeps a table cell on its line and in its column.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
}

// formatTook rounds a probe's duration for the table: "<1ms", "12ms",
// "1.204s".
func formatTook(d time.Duration) string {
	if d < time.Millisecond {
		return "<1ms"
	}
	return d.Round(time.Millisecond).String()
}

// humanBytes is n in the largest binary unit it has one of, to one
// decimal: "40.2 GiB", "512 B".
func humanBytes(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// explain words a probe's error for an operator: the network's and TLS's
// failures as what they mean ("connection refused", "no answer within
// 10s", "host x not found"), anything else as the probe phrased it.
func explain(err error, timeout time.Duration) string {
	var (
		dns     *net.DNSError
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		host    x509.HostnameError
		record  tls.RecordHeaderError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.As(err, &dns):
		return fmt.Sprintf("host %s not found", dns.Name)
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by the server"
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &host):
		return "TLS: the server's certificate is not trusted: " + tlsCause(err)
	case errors.As(err, &record):
		return "TLS: the server does not speak TLS"
	}
	return err.Error()
}

// tlsCause is the certificate error's own text, without the wrapping.
func tlsCause(err error) string {
	var (
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		host    x509.HostnameError
	)
	switch {
	case errors.As(err, &unknown):
		return unknown.Error()
	case errors.As(err, &invalid):
		return invalid.Error()
	case errors.As(err, &host):
		return host.Error()
	}
	return err.Error()
}

// problem is a probe's failure worded for an operator: Error is the
// message alone, Unwrap the cause (for explain's network cases and for
// tests).
type problem struct {
	msg   string
	cause error
}

func (p *problem) Error() string { return p.msg }

func (p *problem) Unwrap() error { return p.cause }

// failf returns a problem with the message format and cause.
func failf(cause error, format string, a ...any) error {
	return &problem{msg: fmt.Sprintf(format, a...), cause: cause}
}

// httpStatus is the HTTP status of a storage or catalog error and the
// server's error code ("AccessDenied"), if the error carries them: the AWS
// SDK's response errors, Google API errors.
func httpStatus(err error) (int, string) {
	status, code := 0, ""
	var sc interface{ HTTPStatusCode() int }
	if errors.As(err, &sc) {
		status = sc.HTTPStatusCode()
	}
	var ec interface{ ErrorCode() string }
	if errors.As(err, &ec) {
		code = ec.ErrorCode()
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		status = ge.Code
		if len(ge.Errors) > 0 {
			code = ge.Errors[0].Reason
		}
	}
	return status, code
}

// statusText is "403 Forbidden".
func statusText(status int) string {
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

// endpointURL is s without user information, query or fragment, for the
// Endpoint column: a query may carry a token. A URL that does not parse is
// shown only if it has no '@'.
func endpointURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "<unparsable URL>"
		}
		return s
	}
	query := u.RawQuery != "" || u.ForceQuery
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	if query {
		return u.String() + "?…"
	}
	return u.String()
}
