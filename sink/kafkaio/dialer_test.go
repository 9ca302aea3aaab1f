package kafkaio

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lakesink/lakesink/config"
)

// testPKI is a throw-away CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type testPKI struct {
	caFile, clientCert, clientKey string
	caPool                        *x509.CertPool
	server                        tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "lakesink test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := &testPKI{caPool: x509.NewCertPool()}
	p.caPool.AddCert(caCert)
	p.caFile = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	sc, sk := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	if p.server, err = tls.X509KeyPair(sc, sk); err != nil {
		t.Fatal(err)
	}
	cc, ck := issue(3, "lakesink", x509.ExtKeyUsageClientAuth, nil)
	p.clientCert, p.clientKey = write("client.pem", cc), write("client-key.pem", ck)
	return p
}

// probe does what the sink does first: an admin request through a Client
// built from the dialer the way New builds it, then a consumer-style
// connection through the dialer itself.
func probe(ctx context.Context, d *kafka.Dialer, addr string) error {
	transport := &kafka.Transport{Dial: d.DialFunc, TLS: d.TLS, SASL: d.SASLMechanism, ClientID: d.ClientID}
	defer transport.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second, Transport: transport}
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"events"}}); err != nil {
		return err
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.ReadPartitions("events")
	return err
}

func TestKafkaAuth(t *testing.T) {
	pki := newTestPKI(t)
	const user, pass = "sinkuser", "s3cr3t-kafka-pass"
	type tc struct {
		name      string
		mech      config.SASLMechanism
		tls       bool
		clientTLS bool // broker requires a client certificate
		password  string
		wantErr   string
	}
	cases := []tc{
		{name: "plain", mech: config.SASLPlain, password: pass},
		{name: "scram-sha-256", mech: config.SASLScramSHA256, password: pass},
		{name: "scram-sha-512", mech: config.SASLScramSHA512, password: pass},
		{name: "tls", tls: true},
		{name: "mtls", tls: true, clientTLS: true},
		{name: "tls+scram-sha-512", mech: config.SASLScramSHA512, tls: true, clientTLS: true, password: pass},
		{name: "plain wrong password", mech: config.SASLPlain, password: "nope-wrong", wantErr: "connect to kafka with SASL PLAIN authentication (kafka.sasl.username, kafka.sasl.password)"},
		{name: "scram wrong password", mech: config.SASLScramSHA256, password: "nope-wrong", wantErr: "connect to kafka with SASL SCRAM-SHA-256 authentication"},
		{name: "tls+plain wrong password", mech: config.SASLPlain, tls: true, password: "nope-wrong", wantErr: "connect to kafka with TLS (kafka.tls) and SASL PLAIN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "events")}
			if c.mech != "" {
				opts = append(opts, kfake.EnableSASL(), kfake.Superuser(string(c.mech), user, pass))
			}
			if c.tls {
				stc := &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
				if c.clientTLS {
					stc.ClientAuth = tls.RequireAndVerifyClientCert
					stc.ClientCAs = pki.caPool
				}
				opts = append(opts, kfake.TLS(stc))
			}
			cluster, err := kfake.NewCluster(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			kc := config.Kafka{ClientID: "lakesink-test", SASL: config.SASL{Mechanism: c.mech, Username: user, Password: c.password}}
			if c.tls {
				kc.TLS = config.TLS{Enabled: true, CAFile: pki.caFile}
				if c.clientTLS {
					kc.TLS.CertFile, kc.TLS.KeyFile = pki.clientCert, pki.clientKey
				}
			}
			d, err := NewDialer(kc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			addr := cluster.ListenAddrs()[0]
			err = CheckKafka(ctx, d, []string{addr})
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("check: %v", err)
				}
				if err := probe(ctx, d, addr); err != nil {
					t.Fatalf("connect: %v", err)
				}
				// CanCreateTopic's connection of its own (validate
				// --connect) authenticates the same way.
				if err := NewAdmin([]string{addr}, "g", "test", d).CanCreateTopic(ctx, "dlq"); err != nil {
					t.Fatalf("CanCreateTopic: %v", err)
				}
				return
			}
			if perr := probe(ctx, d, addr); perr == nil {
				t.Fatal("client connected with a wrong password")
			}
			if pc, cerr := NewAdmin([]string{addr}, "g", "test", d).connect(ctx, addr); cerr == nil {
				pc.Close()
				t.Fatal("CanCreateTopic's connection authenticated with a wrong password")
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("connect with a wrong password: got %v, want an error containing %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), c.password) || strings.Contains(err.Error(), pass) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

// TestKafkaAuthTLSWithoutClientCert: a broker requiring client certificates
// rejects a dialer without one, and a dialer without the CA rejects the
// broker's certificate.
func TestKafkaAuthTLSRejected(t *testing.T) {
	pki := newTestPKI(t)
	stc := &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.caPool}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"), kfake.TLS(stc))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	for name, tc := range map[string]config.TLS{
		"no client cert": {Enabled: true, CAFile: pki.caFile},
		"unknown CA":     {Enabled: true, CertFile: pki.clientCert, KeyFile: pki.clientKey},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := NewDialer(config.Kafka{TLS: tc})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := probe(ctx, d, cluster.ListenAddrs()[0]); err == nil {
				t.Fatal("connect succeeded, want a TLS error")
			}
		})
	}
}

func TestNewDialerErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  config.Kafka
		want string
	}{
		{"missing CA", config.Kafka{TLS: config.TLS{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}}, "kafka.tls.ca_file"},
		{"CA not PEM", config.Kafka{TLS: config.TLS{Enabled: true, CAFile: notPEM}}, "no PEM certificate"},
		{"cert without key", config.Kafka{TLS: config.TLS{Enabled: true, CertFile: notPEM}}, "set both or neither"},
		{"bad key pair", config.Kafka{TLS: config.TLS{Enabled: true, CertFile: notPEM, KeyFile: notPEM}}, "kafka.tls.cert_file/key_file"},
		{"unknown mechanism", config.Kafka{SASL: config.SASL{Mechanism: "GSSAPI", Password: "topsecret"}}, "unknown mechanism"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewDialer(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
	d, err := NewDialer(config.Kafka{ClientID: "x"})
	if err != nil || d.TLS != nil || d.SASLMechanism != nil || d.ClientID != "x" {
		t.Fatalf("plain dialer: %+v, %v", d, err)
	}
}
