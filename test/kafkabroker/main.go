// Command kafkabroker runs a Kafka-protocol broker (franz-go's kfake) as its
// own process, for end-to-end and chaos tests. It listens on 127.0.0.1 only,
// prints "listening ADDR" on stdout once ready, and shuts down cleanly on
// SIGTERM or SIGINT (so a test can restart it with the same -data-dir).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lakesink/lakesink/test/kafkabroker/kfakenet"
)

func main() {
	var (
		port       = flag.Int("port", 0, "port on 127.0.0.1 (0: any free port)")
		partitions = flag.Int("partitions", 3, "default partition count for auto-created topics")
		dataDir    = flag.String("data-dir", "", "persist state here, reload it on start (empty: memory only)")
		topics     = flag.String("topics", "", "comma-separated topics to create at start (with -partitions partitions)")
		minSession = flag.Duration("min-session-timeout", time.Second, "smallest group session timeout accepted")
		saslMechs  = flag.String("sasl-mechanisms", "", "require SASL: comma-separated PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 for -sasl-user")
		saslUser   = flag.String("sasl-user", "admin", "SASL superuser name")
		saslPass   = flag.String("sasl-pass", "admin", "SASL superuser password")
		cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the broker here until it stops (benchmarks)")
	)
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatalf("kafkabroker: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("kafkabroker: %v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}

	opts := []kfake.Opt{
		kfake.Ports(*port),
		kfake.DefaultNumPartitions(*partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.GroupMinSessionTimeout(*minSession),
		// Expires a member killed with its JoinGroup pending, which kfake
		// alone may keep forever (see package kfakenet).
		kfake.ListenFn(kfakenet.Listen),
	}
	if *saslMechs != "" {
		opts = append(opts, kfake.EnableSASL())
		for _, m := range strings.Split(*saslMechs, ",") {
			opts = append(opts, kfake.Superuser(m, *saslUser, *saslPass))
		}
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *topics != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*topics, ",")...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		log.Printf("kafkabroker: start: %v", err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", c.ListenAddrs()[0])

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
}
