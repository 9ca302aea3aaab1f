package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/test/faultproxy"
	"github.com/lakesink/lakesink/test/testenv"
	"github.com/lakesink/lakesink/writers"
)

// Storage faults — cell (d). The sink's storage endpoint is a proxy in
// front of the real test server; the test reads the lake back directly
// (S3, HDFS) or through the proxy once it passes again (GCS, whose emulator
// routes by the Host header it was told to expect). Every mode runs in its
// own sink, all of one backend at the same time:
//
//   - the sink starts ready, then the proxy turns to the mode and records
//     of two past hours are produced, so uploads meet the fault;
//   - during it: /readyz 503 with "storage unreachable" — in every sample
//     from the first failure on, except in Slow, where uploads may still
//     land —, /healthz 200, lakesink_ready 0,
//     lakesink_dependency_errors_total{dependency="storage"} > 0, and
//     (except Slow) nothing committed;
//   - back to Pass: every record committed and in the manifests, /readyz
//     200, exact output;
//   - Blackhole only: the fault comes back and SIGTERM must end the sink
//     within shutdown_timeout + 5 s (the others stop within the bound in
//     Pass).
//
// HDFS: the proxy sits before the NameNode only. The DataNode's address
// comes from the NameNode's answers, so block transfers bypass the proxy;
// only Refuse and Blackhole (the NameNode gone or hung) are covered.

// storageFaultModes are the modes S3 and GCS run; errBody gives the error
// document the backend's clients expect with a canned status.
func storageFaultModes(errBody func(code int) string) []faultproxy.Mode {
	return []faultproxy.Mode{
		faultproxy.Refuse,
		faultproxy.Blackhole,
		faultproxy.Reset(300), // within the first request's headers
		faultproxy.Slow(3 * time.Second),
		faultproxy.HTTPStatus(403, errBody(403)),
		faultproxy.HTTPStatus(503, errBody(503)),
	}
}

// smallObject is the largest body S3 takes in the small-objects-only
// modes: more than the write probe's timestamp, less than any data file
// (about 7 KB here).
const smallObject = 2 << 10

// s3SmallObjectsOnly are S3 with room for small objects only: the write
// probe's put and delete pass, every data file is refused — 413
// EntityTooLarge (a body limit in front of the store) or 403 QuotaExceeded
// (a bucket or user quota, as Ceph RGW answers it).
func s3SmallObjectsOnly() []faultproxy.Mode {
	return []faultproxy.Mode{
		faultproxy.HTTPStatusOver(smallObject, 413, s3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")),
		faultproxy.HTTPStatusOver(smallObject, 403, s3Error("QuotaExceeded", "The quota has been exceeded")),
	}
}

func s3ErrorBody(code int) string {
	if code == 503 {
		return s3Error("ServiceUnavailable", "Please reduce your request rate.")
	}
	return s3Error("AccessDenied", "Access Denied")
}

// s3Error is S3's error document with code and message.
func s3Error(code, msg string) string {
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><RequestId>faultproxy</RequestId><HostId>faultproxy</HostId></Error>`, code, msg)
}

func gcsErrorBody(code int) string {
	reason := "forbidden"
	if code == 503 {
		reason = "backendError"
	}
	return fmt.Sprintf(`{"error":{"code":%d,"message":"faultproxy: %s","errors":[{"domain":"global","reason":%q,"message":"faultproxy: %s"}]}}`,
		code, reason, reason, reason)
}

// runStorageFault runs one storage cell: a sink named name writing st
// through proxy, lake reading the same data.
func runStorageFault(t *testing.T, k *testenv.Kafka, name string, proxy *faultproxy.Proxy, st config.Storage, lake writers.Writer, mode faultproxy.Mode) {
	s := newFaultSink(t, k, name, st, lake)
	s.start()
	s.waitReady(60 * time.Second)
	proxy.SetMode(mode)
	faultStart := time.Now()
	s.produceHours(2)
	s.waitNotReady(30*time.Second, "storage unreachable")
	// Several upload attempts, probes and commit intervals.
	hold := max(time.Until(faultStart.Add(6*time.Second)), 5*time.Second)
	slow := strings.HasPrefix(mode.String(), "slow") // slow uploads may still land
	if slow {
		time.Sleep(hold)
	} else {
		s.notReadyThroughout(hold, "storage unreachable")
	}
	s.checkFaultMetrics("storage")
	if !slow {
		s.checkNothingCommitted()
	}
	if proxy.Accepted() == 0 {
		t.Errorf("no connection ever reached the proxy: is the sink really writing through %s?", proxy.Addr())
	}
	proxy.SetMode(faultproxy.Pass)
	s.waitDone(faultRecover)
	if mode != faultproxy.Blackhole {
		s.finish()
		return
	}
	proxy.SetMode(faultproxy.Blackhole)
	s.waitNotReady(20*time.Second, "storage unreachable")
	_ = s.term() // the bound is what counts; the exit code is logged
	proxy.SetMode(faultproxy.Pass)
	s.checkExact()
}

// TestFaultStorageS3: every mode against versitygw, and S3 with room for
// small objects only.
func TestFaultStorageS3(t *testing.T) {
	skipShort(t)
	k := testenv.StartKafka(t)
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "lake")
	modes := append(storageFaultModes(s3ErrorBody), s3SmallObjectsOnly()...)
	concurrently(t, modes, faultproxy.Mode.String, func(t *testing.T, mode faultproxy.Mode) {
		name := "s3-" + mode.String()
		proxy := faultproxy.New(t, srv.Endpoint[len("http://"):])
		st := config.Default().Storage
		st.Type = config.StorageS3
		st.S3.Bucket, st.S3.Prefix, st.S3.Region, st.S3.ForcePathStyle = "lake", name, srv.Region, true
		st.S3.AccessKeyID, st.S3.SecretAccessKey = srv.AccessKey, srv.SecretKey
		st.S3.Endpoint = srv.Endpoint
		lake := openLake(t, st).lake // the test reads directly
		st.S3.Endpoint = "http://" + proxy.Addr()
		runStorageFault(t, k, name, proxy, st, lake, mode)
	})
}

// TestFaultStorageGCS: every mode against fake-gcs-server, one server per
// mode (each knows its proxy's address as its public host).
func TestFaultStorageGCS(t *testing.T) {
	skipShort(t)
	k := testenv.StartKafka(t)
	concurrently(t, storageFaultModes(gcsErrorBody), faultproxy.Mode.String, func(t *testing.T, mode faultproxy.Mode) {
		name := "gcs-" + mode.String()
		port := testenv.FreePort(t)
		proxy := faultproxy.New(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		srv := testenv.StartGCSBehind(t, port, proxy.Addr())
		srv.CreateBucket(t, "lake")
		st := config.Default().Storage
		st.Type = config.StorageGCS
		st.GCS.Bucket, st.GCS.Prefix, st.GCS.Endpoint = "lake", name, srv.Endpoint
		runStorageFault(t, k, name, proxy, st, openLake(t, st).lake, mode)
	})
}

// TestFaultStorageHDFS: the NameNode refusing or hung.
func TestFaultStorageHDFS(t *testing.T) {
	skipShort(t)
	k := testenv.StartKafka(t)
	srv := testenv.StartHDFS(t)
	modes := []faultproxy.Mode{faultproxy.Refuse, faultproxy.Blackhole}
	concurrently(t, modes, faultproxy.Mode.String, func(t *testing.T, mode faultproxy.Mode) {
		name := "hdfs-" + mode.String()
		proxy := faultproxy.New(t, srv.Addr)
		st := config.Default().Storage
		st.Type = config.StorageHDFS
		st.HDFS.Namenodes, st.HDFS.User, st.HDFS.Root = []string{srv.Addr}, "lakesink", "/"+name
		lake := openLake(t, st).lake
		st.HDFS.Namenodes = []string{proxy.Addr()}
		runStorageFault(t, k, name, proxy, st, lake, mode)
	})
}
