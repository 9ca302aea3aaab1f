package kafkaio

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/apiversions"
	"github.com/segmentio/kafka-go/protocol/createtopics"
	"github.com/segmentio/kafka-go/protocol/saslauthenticate"
	"github.com/segmentio/kafka-go/protocol/saslhandshake"
	"github.com/segmentio/kafka-go/sasl"
)

// CanCreateTopic asks the controller whether CreateTopic would create
// topic, without creating it (CreateTopics with validate_only, Kafka 0.10.2
// and later). nil: it would, or the topic exists. Errors are as
// CreateTopic's: ErrCreateRefused wraps the broker's refusal (not
// authorized, a creation policy), else the request failed.
//
// Why a connection of its own rather than the Admin's client: kafka-go's
// transport waits, after every CreateTopics answer without an error, until
// the topics appear in the cluster's metadata — which a validate-only
// request never makes happen, so the call would last until ctx ends. The
// connection is set up as the transport sets up its own (TLS and SASL from
// the dialer, API versions negotiated) and closed on return.
func (a *Admin) CanCreateTopic(ctx context.Context, topic string) error {
	md, err := a.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		return fmt.Errorf("validate create topic %s: metadata: %w", topic, err)
	}
	if md.Controller.Host == "" {
		return fmt.Errorf("validate create topic %s: the cluster names no controller", topic)
	}
	addr := net.JoinHostPort(md.Controller.Host, strconv.Itoa(md.Controller.Port))
	pc, err := a.connect(ctx, addr)
	if err != nil {
		return fmt.Errorf("validate create topic %s: controller %s: %w", topic, addr, err)
	}
	defer pc.Close()
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	m, err := pc.RoundTrip(&createtopics.Request{
		Topics:       []createtopics.RequestTopic{{Name: topic, NumPartitions: 1, ReplicationFactor: -1}},
		TimeoutMs:    int32(max(timeout, time.Millisecond) / time.Millisecond),
		ValidateOnly: true,
	})
	if err != nil {
		return fmt.Errorf("validate create topic %s: %w", topic, err)
	}
	for _, t := range m.(*createtopics.Response).Topics {
		if t.Name != topic || t.ErrorCode == 0 {
			continue
		}
		e := kafka.Error(t.ErrorCode)
		if errors.Is(e, kafka.TopicAlreadyExists) {
			return nil
		}
		if t.ErrorMessage != "" {
			return fmt.Errorf("validate create topic %s: %w: %w (%s)", topic, ErrCreateRefused, e, t.ErrorMessage)
		}
		return fmt.Errorf("validate create topic %s: %w: %w", topic, ErrCreateRefused, e)
	}
	return nil
}

// connect opens a protocol connection to the broker at addr with the
// Admin's dialer: TCP, TLS, API versions, SASL, within ctx's deadline. The
// caller closes it.
func (a *Admin) connect(ctx context.Context, addr string) (*protocol.Conn, error) {
	d := a.dialer
	dial := d.DialFunc
	if dial == nil {
		nd := &net.Dialer{Timeout: d.Timeout}
		dial = nd.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Reads and writes end by ctx's deadline, or at once when ctx ends.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	if d.TLS != nil {
		tc := d.TLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		nc = tlsConn
	}
	pc := protocol.NewConn(nc, d.ClientID)
	r, err := pc.RoundTrip(new(apiversions.Request))
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("api versions: %w", err)
	}
	res := r.(*apiversions.Response)
	if res.ErrorCode != 0 {
		pc.Close()
		return nil, fmt.Errorf("api versions: %w", kafka.Error(res.ErrorCode))
	}
	versions := make(map[protocol.ApiKey]int16, len(res.ApiKeys))
	for _, k := range res.ApiKeys {
		key := protocol.ApiKey(k.ApiKey)
		versions[key] = key.SelectVersion(k.MinVersion, k.MaxVersion)
	}
	pc.SetVersions(versions)
	if d.SASLMechanism != nil {
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		sctx := sasl.WithMetadata(ctx, &sasl.Metadata{Host: host, Port: p})
		if err := authenticate(sctx, pc, d.SASLMechanism); err != nil {
			pc.Close()
			return nil, fmt.Errorf("sasl %s: %w", d.SASLMechanism.Name(), err)
		}
	}
	if ctx.Err() != nil {
		pc.Close()
		return nil, ctx.Err()
	}
	return pc, nil
}

// authenticate runs the SASL exchange of mechanism on pc, as kafka-go's
// transport does: a handshake naming the mechanism, then authenticate
// round trips until the mechanism is done. A broker may answer bad
// credentials by closing the connection: that is
// kafka.SASLAuthenticationFailed.
func authenticate(ctx context.Context, pc *protocol.Conn, mechanism sasl.Mechanism) error {
	m, err := pc.RoundTrip(&saslhandshake.Request{Mechanism: mechanism.Name()})
	if err != nil {
		return err
	}
	if code := m.(*saslhandshake.Response).ErrorCode; code != 0 {
		return kafka.Error(code)
	}
	sess, state, err := mechanism.Start(ctx)
	if err != nil {
		return err
	}
	for done := false; !done; {
		m, err := pc.RoundTrip(&saslauthenticate.Request{AuthBytes: state})
		if errors.Is(err, io.EOF) {
			return kafka.SASLAuthenticationFailed
		}
		if err != nil {
			return err
		}
		res := m.(*saslauthenticate.Response)
		if res.ErrorCode != 0 {
			if res.ErrorMessage != "" {
				return fmt.Errorf("%w: %s", kafka.Error(res.ErrorCode), res.ErrorMessage)
			}
			return kafka.Error(res.ErrorCode)
		}
		if done, state, err = sess.Next(ctx, res.AuthBytes); err != nil {
			return err
		}
	}
	return nil
}
