package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/kafkaio"
)

// planKafka plans the brokers check and, after it, the checks that need
// the brokers: each stream topic, the group's offsets, the dead-letter
// topic and (with markers) the completion topic.
func planKafka(p *plan, cfg *config.Config) {
	kc := cfg.Kafka
	d, derr := kafkaio.NewDialer(kc)
	if derr == nil {
		d.Timeout = p.timeout
	}
	var admin *kafkaio.Admin
	brokers := p.add("kafka brokers", strings.Join(kc.Brokers, ","), func(ctx context.Context) (string, error) {
		if derr != nil {
			return "", derr // names the config key
		}
		if err := kafkaio.CheckKafka(ctx, d, kc.Brokers); err != nil {
			return "", kafkaError(err, kc)
		}
		admin = kafkaio.NewAdmin(kc.Brokers, kc.GroupID, kc.ClientID, d)
		return "metadata read" + authNote(kc), nil
	})
	var topics []string
	for _, sc := range cfg.Streams {
		for _, topic := range sc.Topics {
			topics = append(topics, topic)
			p.add("kafka topic", topic+" (stream "+sc.Name+")", func(ctx context.Context) (string, error) {
				return streamTopic(ctx, admin, topic)
			}).after = brokers
		}
	}
	p.add("kafka group", kc.GroupID, func(ctx context.Context) (string, error) {
		return groupOffsets(ctx, admin, topics, kc.StartOffset)
	}).after = brokers
	p.add("dead-letter topic", cfg.DeadLetter.Topic, func(ctx context.Context) (string, error) {
		return outputTopic(ctx, admin, cfg.DeadLetter.Topic)
	}).after = brokers
	if t := cfg.Markers.KafkaTopic; cfg.Markers.Enabled && t != "" {
		p.add("completion topic", t, func(ctx context.Context) (string, error) {
			return outputTopic(ctx, admin, t)
		}).after = brokers
	}
}

// authNote says how the brokers were reached: " over TLS with SASL PLAIN
// as user u" (the user is no secret; the password is never shown).
func authNote(kc config.Kafka) string {
	var s string
	if kc.TLS.Enabled {
		s += " over TLS"
	}
	if kc.SASL.Mechanism != config.SASLNone {
		s += fmt.Sprintf(" with SASL %s as user %q", kc.SASL.Mechanism, kc.SASL.Username)
	}
	return s
}

// kafkaError words a failed broker check. The network's failures explain
// words; a rejected login is named with the settings to check.
func kafkaError(err error, kc config.Kafka) error {
	if errors.Is(err, kafka.SASLAuthenticationFailed) || errors.Is(err, kafka.IllegalSASLState) ||
		errors.Is(err, kafka.UnsupportedSASLMechanism) {
		return failf(err, "SASL %s login as user %q refused: check kafka.sasl.mechanism, username and password",
			kc.SASL.Mechanism, kc.SASL.Username)
	}
	return err
}

// streamTopic checks that a stream's topic exists with a leader for every
// partition. lakesink never creates the topics it reads.
func streamTopic(ctx context.Context, admin *kafkaio.Admin, topic string) (string, error) {
	infos, err := admin.DescribeTopics(ctx, []string{topic})
	if err != nil {
		return "", err
	}
	info := infos[topic]
	if !info.Exists && info.Err == nil {
		return "", fmt.Errorf("topic %s does not exist", topic)
	}
	if err := topicError(topic, info); err != nil {
		return "", err
	}
	return plural(info.Partitions, "partition"), nil
}

// topicError is the problem of a topic the broker answered for with an
// error: not authorized, or partitions without a leader.
func topicError(topic string, info kafkaio.TopicInfo) error {
	switch {
	case errors.Is(info.Err, kafka.TopicAuthorizationFailed):
		return fmt.Errorf("not authorized to describe topic %s: grant the user Describe and Read on it", topic)
	case len(info.Leaderless) > 0:
		return fmt.Errorf("topic %s: %d of %d partitions have no leader: %w", topic, len(info.Leaderless), info.Partitions, info.Err)
	case info.Err != nil:
		return fmt.Errorf("topic %s: %w", topic, info.Err)
	}
	return nil
}

// groupOffsets reads the group's committed offsets of the stream topics
// that exist (a missing topic is its own check's failure). None committed
// is no problem: a new group starts at start_offset.
func groupOffsets(ctx context.Context, admin *kafkaio.Admin, topics []string, start config.StartOffset) (string, error) {
	infos, err := admin.DescribeTopics(ctx, topics)
	if err != nil {
		return "", err
	}
	var existing []string
	for _, t := range topics {
		if infos[t].Exists && infos[t].Err == nil {
			existing = append(existing, t)
		}
	}
	if len(existing) == 0 {
		return "no stream topic to read offsets of", nil
	}
	parts, err := admin.GroupOffsets(ctx, existing)
	if errors.Is(err, kafka.GroupAuthorizationFailed) {
		return "", fmt.Errorf("not authorized to read the group's offsets: grant the user Read on the group: %w", err)
	}
	if err != nil {
		return "", fmt.Errorf("read committed offsets: %w", err)
	}
	committed := 0
	for _, p := range parts {
		if p.Committed >= 0 {
			committed++
		}
	}
	if committed == 0 {
		return fmt.Sprintf("offsets readable: none committed yet, %s start at start_offset %s", plural(len(parts), "partition"), start), nil
	}
	return fmt.Sprintf("offsets readable: %d of %s committed", committed, plural(len(parts), "partition")), nil
}

// outputTopic checks a topic lakesink writes to and creates at need (the
// dead-letter and completion topics): it exists with leaders, or the
// broker would let run create it — asked without creating it.
func outputTopic(ctx context.Context, admin *kafkaio.Admin, topic string) (string, error) {
	infos, err := admin.DescribeTopics(ctx, []string{topic})
	if err != nil {
		return "", err
	}
	info := infos[topic]
	if info.Exists {
		if err := topicError(topic, info); err != nil {
			return "", err
		}
		return plural(info.Partitions, "partition"), nil
	}
	if info.Err != nil && !errors.Is(info.Err, kafka.TopicAuthorizationFailed) {
		return "", topicError(topic, info)
	}
	err = admin.CanCreateTopic(ctx, topic)
	if errors.Is(err, kafkaio.ErrCreateRefused) {
		cause := err.Error()
		var kerr kafka.Error
		if errors.As(err, &kerr) {
			cause = kerr.Error()
		}
		return "", failf(err, "topic %s does not exist and the broker refuses to create it (%s): create it, or let lakesink's user create topics", topic, cause)
	}
	if err != nil {
		return "", err
	}
	return "missing: run creates it (the broker allows it)", nil
}

// plural is "1 partition", "3 partitions".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
