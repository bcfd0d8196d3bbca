package dev.isthmus.bench;

import java.util.Arrays;

/** Entry point of {@code bench/run}: the first argument names the benchmark. */
public final class BenchMain {

    private BenchMain() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help")) {
            System.out.println("""
                    usage: bench/run <benchmark> [options]
                      federation-scale [--clusters 10] [--services 1000] [--endpoints 10] [--changes 60] [--base-port 24000]
                          N controllers against one real nats-server, each with S services x E endpoints (static file);
                          the last joins the running federation: time to the full catalog, heap, NATS bytes; then
                          single-endpoint changes: propagation p50/p99 to every other controller.
                      csr-signing [--csrs 3000] [--concurrency 4] [--openssl 400]
                          a real trust bridge signing P-256 CSRs over gRPC (embedded backend), side by side
                          with `openssl x509 -req` signing the same CSRs with the same root.
                      proxy [--seconds 8] [--rate 2000] [--connections 32] [--base-port 24300]
                          the sidecar's HTTP/1.1 path against HAProxy (one sidecar, and sidecar -> sidecar over mTLS
                          against HAProxy -> HAProxy over TLS): wrk throughput, latency at a fixed rate, RSS, time to ready.
                      gateway [--seconds 8] [--rate 2000] [--connections 32] [--idle 9500] [--base-port 24400]
                          the east-west gateway's TLS passthrough against HAProxy in TCP mode on req.ssl_sni, same backend:
                          new TLS sessions/s, long-flow throughput, added latency at a fixed rate, RSS with N idle flows.
                      xds-snapshots [--services 1000] [--endpoints 10] [--proxies 500] [--clusters 3] [--rounds 5]
                          the controller's xDS resource builder in process: build time and heap for S services x E
                          endpoints and P sidecars (full and incremental rebuilds, routes shared per namespace); bytes
                          pushed when one endpoint changes (full, per type, delta).
                      policy-propagation [--proxies 50] [--commits 10] [--base-port 22000]
                          a local federation of 3 regions watching one Git repository, P ADS clients over the three
                          controllers: commit-to-applied latency p50/p99, webhook and polling.
                      failover [--runs 3] [--rate 40] [--outage 15] [--base-port 22500]
                          3 regions, the catalogue in eu-west and ap-south only, steady traffic from us-east; each run kills
                          every process of eu-west and starts it again: time to reroute, failed requests, p99, return.
                      mesh-memory [--idle 120] [--base-port 22700]
                          3 regions as `isthmus up` runs them, idle: RSS, its high-water mark and classes loaded of
                          every process, by kind (the sidecars with xDS, mTLS and their SVIDs).""");
            return;
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        switch (args[0]) {
            case "federation-scale" -> System.exit(FederationScale.run(rest));
            case "csr-signing" -> System.exit(CsrSigning.run(rest));
            case "proxy" -> System.exit(ProxyBench.run(rest));
            case "gateway" -> System.exit(GatewayBench.run(rest));
            case "xds-snapshots" -> System.exit(XdsSnapshots.run(rest));
            case "policy-propagation" -> System.exit(PolicyPropagation.run(rest));
            case "failover" -> System.exit(FailoverBench.run(rest));
            case "mesh-memory" -> System.exit(MeshMemory.run(rest));
            default -> {
                System.err.println("bench: unknown benchmark '" + args[0] + "'; try bench/run --help");
                System.exit(2);
            }
        }
    }
}
