package kafkaio

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/lakesink/lakesink/config"
)

// NewDialer builds the Kafka dialer for cfg's TLS and SASL settings. The
// same dialer (and a Transport derived from it, see New) is used by the
// consumer group, the partition readers, the admin client and the
// dead-letter and completion-event writers, so every connection is
// authenticated the same way.
//
// TLS: with tls.enabled, the CA file (PEM, may hold several certificates)
// replaces the system roots when set; cert_file and key_file add a client
// certificate. SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with username
// and password; the password is only kept inside the mechanism and never
// appears in an error message.
//
// Errors name the config key and the file, never file contents. NewDialer
// does not connect.
func NewDialer(cfg config.Kafka) (*kafka.Dialer, error) {
	d := &kafka.Dialer{
		ClientID:  cfg.ClientID,
		Timeout:   10 * time.Second,
		DualStack: true,
	}
	if cfg.TLS.Enabled {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		d.TLS = tc
	}
	mech, err := saslMechanism(cfg.SASL)
	if err != nil {
		return nil, err
	}
	d.SASLMechanism = mech
	return d, nil
}

func tlsConfig(c config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: no PEM certificate in %s", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("kafka.tls: cert_file and key_file go together: set both or neither")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			// tls errors name the problem, not the key material.
			return nil, fmt.Errorf("kafka.tls.cert_file/key_file: load %s and %s: %w", c.CertFile, c.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func saslMechanism(c config.SASL) (sasl.Mechanism, error) {
	switch c.Mechanism {
	case config.SASLNone:
		return nil, nil
	case config.SASLPlain:
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case config.SASLScramSHA256, config.SASLScramSHA512:
		algo := scram.SHA256
		if c.Mechanism == config.SASLScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.Username, c.Password)
		if err != nil {
			// The scram library's errors come from SASLprep of the
			// username and password; don't echo them.
			return nil, fmt.Errorf("kafka.sasl: %s credentials for user %q are not valid SASLprep strings", c.Mechanism, c.Username)
		}
		return m, nil
	default:
		return nil, fmt.Errorf("kafka.sasl.mechanism: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.Mechanism)
	}
}

// CheckKafka connects to the brokers with d (the first that answers wins)
// and reads the cluster's metadata, within ctx's deadline (else the
// dialer's timeout per broker), so a wrong address, certificate or
// password fails at start-up with an error that says which setting to look
// at, rather than as a stream of retries later. A broker that rejects SASL
// credentials may just close the connection; the error then still names the
// mechanism and user (never the password).
func CheckKafka(ctx context.Context, d *kafka.Dialer, brokers []string) error {
	var errs []error
	for _, b := range brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			// A broker that accepts the connection but never answers
			// must not hang start-up: the metadata request gets ctx's
			// deadline, or the dialer's timeout.
			deadline, ok := ctx.Deadline()
			if !ok {
				deadline = time.Now().Add(d.Timeout)
			}
			_ = conn.SetDeadline(deadline)
			stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
			_, err = conn.Brokers()
			stop()
			conn.Close()
		}
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", b, err))
		if ctx.Err() != nil {
			break
		}
	}
	err := errors.Join(errs...)
	var what []string
	if d.TLS != nil {
		what = append(what, "TLS (kafka.tls)")
	}
	if d.SASLMechanism != nil {
		what = append(what, fmt.Sprintf("SASL %s authentication (kafka.sasl.username, kafka.sasl.password)", d.SASLMechanism.Name()))
	}
	if len(what) == 0 {
		return fmt.Errorf("connect to kafka: %w", err)
	}
	return fmt.Errorf("connect to kafka with %s: %w", strings.Join(what, " and "), err)
}
