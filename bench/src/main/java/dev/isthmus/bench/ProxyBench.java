package dev.isthmus.bench;

import java.io.BufferedInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;

/**
 * The sidecar's data-plane benchmark (issue 5), side by side in one run on this machine: a client
 * straight to the app; through one sidecar (HTTP/1.1 listener from an Envoy bootstrap); through
 * HAProxy as the same reverse proxy; sidecar to sidecar over mTLS (SVIDs from a real trust bridge)
 * against HAProxy to HAProxy over TLS with client certificates. The "app" is an HAProxy process
 * answering 200 itself, so the backend costs the same for every path. Every proxy runs one
 * event-loop thread ({@code nbthread 1}, {@code io-threads=1}); the app, each sidecar and the
 * HAProxy reverse proxy are processes of their own, the HAProxy pair's two ends share one.
 *
 * <p>Throughput: wrk (HTTP/1.1 keep-alive, small bodies). Latency: an open-loop generator in this
 * process at a fixed rate (latency counted from each request's scheduled time, so a stall is not
 * hidden), p50/p99, and the difference to the direct path. Memory: the sidecar's RSS when ready, idle
 * ({@link #IDLE_WAIT} after every process was ready: the target's measure) and its peak under load, and the HTTP/2 sidecar's peak; what each sidecar allocated on its heap per
 * request during the rounds, from its GC log (eden is full when a young collection starts); time
 * from process start to ready. HTTP/2: h2load (h2c with prior knowledge,
 * 32 connections of 10 concurrent streams) straight to an HTTP/2 app, through one sidecar whose
 * cluster speaks HTTP/2, and through HAProxy as the same HTTP/2 reverse proxy.
 *
 * <p>Throughput is measured in rounds ({@code --rounds} 4 of {@code --seconds} 4 by default): each
 * round loads every path in turn, and a ratio to HAProxy is the median of the rounds' ratios, each
 * between windows next to each other in time. This machine's speed drifts by a third within
 * minutes, and one window per path let that drift decide a ratio (HTTP/2: 0.46 to 0.61 in three
 * runs of the same code). Latency is measured in rounds of its own the same way (a window of
 * {@code --seconds}, at least 3 s, per path and round): an added latency is the median of the
 * rounds' differences to the direct path. With one window per path, until 2026-11-28, HAProxy's
 * added p99 moved between -2.2 and +1.9 ms from run to run.
 *
 * <p>Every path is warmed up first with the same load ({@code --warmup}, 15 s by default), HAProxy's
 * too: the figures are a long-running proxy's, after the JIT has compiled its paths. On this 2-CPU
 * machine C2 competes with the load for the CPUs, and through one sidecar HTTP/2 reached its steady
 * rate only after 10-15 s of load (72k req/s in the first 6 s, then 110-126k). The memory peak is
 * sampled from the start of the warm-up, so the compilers' memory counts.
 */
final class ProxyBench {

    /**
     * The sidecar's JVM options; ISTHMUS_BENCH_SIDECAR_OPTS replaces them. The native heap is trimmed
     * every second (as {@code isthmus up} runs its JVMs): the JIT compilers' freed memory would
     * otherwise stay resident after load.
     */
    static final String SIDECAR_JVM = System.getenv().getOrDefault("ISTHMUS_BENCH_SIDECAR_OPTS",
            "-Xms16m -Xmx64m -XX:+UseSerialGC -XX:-TieredCompilation -XX:+UnlockExperimentalVMOptions -XX:TrimNativeHeapInterval=1000");

    /**
     * On JDK 25 and later the sidecars start from an AOT cache (JEP 483 and 514: classes loaded and
     * linked, lambdas and string concatenations resolved) that the first, cold start writes when it
     * exits ({@code -XX:AOTCacheOutput}); before, from a dynamic class-data archive
     * ({@code -XX:+AutoCreateSharedArchive}). ISTHMUS_BENCH_ARCHIVE=cds takes the archive on any JDK.
     */
    static final boolean AOT_CACHE = Runtime.version().feature() >= 25
            && !"cds".equals(System.getenv().getOrDefault("ISTHMUS_BENCH_ARCHIVE", "aot"));

    /** How long the sidecars idle before their idle RSS is read: the JIT's start-up arenas are freed and trimmed by then. */
    static final Duration IDLE_WAIT = Duration.ofSeconds(10);

    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();

    static int run(String[] args) throws Exception {
        int base = 24300;
        int seconds = 4;
        int rounds = 4;
        int rate = 2000;
        int connections = 32;
        int warmup = 15;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--base-port" -> base = Integer.parseInt(args[i + 1]);
                case "--seconds" -> seconds = Integer.parseInt(args[i + 1]);
                case "--rounds" -> rounds = Math.max(1, Integer.parseInt(args[i + 1]));
                case "--rate" -> rate = Integer.parseInt(args[i + 1]);
                case "--connections" -> connections = Integer.parseInt(args[i + 1]);
                case "--warmup" -> warmup = Integer.parseInt(args[i + 1]);
                default -> {
                    System.err.println("proxy: unknown option " + args[i]);
                    return 2;
                }
            }
        }
        Path home = BenchFederation.home();
        Path work = Files.createDirectories(home.resolve("bench/target/proxy-" + System.currentTimeMillis()));
        String java = BenchFederation.java();
        int app = base;
        int haproxyRp = base + 1;
        int haproxyFront = base + 2;
        int haproxyBack = base + 3;
        int appH2 = base + 4;
        int haproxyRpH2 = base + 5;
        int sidecarH2 = base + 13;
        int sidecar = base + 10;
        int pairFront = base + 20;
        int pairBackInbound = base + 21;
        int bridgeHttp = base + 30;
        int bridgeGrpc = base + 31;
        List<Process> processes = new ArrayList<>();
        try {
            // TLS material for the HAProxy pair (P-256, like the SVIDs)
            certs(work);
            // The app and the reverse proxy are separate HAProxy processes, as a sidecar is a process
            // apart from the app (until 2026-11-27 they were frontends of one HAProxy thread: HAProxy as
            // a separate process relays more, 150k against 120k req/s over HTTP/2 in windows by hand).
            processes.add(haproxy(work, "app", """
                    frontend app
                      bind 127.0.0.1:%1$d
                      http-request return status 200 content-type text/plain string "ok"
                    frontend app_h2
                      bind 127.0.0.1:%2$d proto h2
                      http-request return status 200 content-type text/plain string "ok"
                    """.formatted(app, appH2)));
            processes.add(haproxy(work, "rp", """
                    frontend rp
                      bind 127.0.0.1:%1$d
                      default_backend to_app
                    backend to_app
                      http-reuse always
                      server app 127.0.0.1:%2$d
                    frontend rp_h2
                      bind 127.0.0.1:%3$d proto h2
                      default_backend to_app_h2
                    backend to_app_h2
                      http-reuse always
                      server app 127.0.0.1:%4$d proto h2
                    """.formatted(haproxyRp, app, haproxyRpH2, appH2)));
            // The pair's two ends share one HAProxy process: as two processes, some of the front's new TLS
            // connections to the back failed their handshake at the start of each load (HAProxy 2.6.12
            // logs "SSL handshake failure", retries after 1 s, and wrk counts timeouts); as one process
            // none did, and it was slower (15k against 17-18k req/s, four windows each by hand).
            processes.add(haproxy(work, "pair", """
                    frontend tls_front
                      bind 127.0.0.1:%1$d
                      default_backend to_tls_back
                    backend to_tls_back
                      http-reuse always
                      server back 127.0.0.1:%2$d ssl crt %3$s/client.pem ca-file %3$s/ca.pem verify required alpn http/1.1
                    frontend tls_back
                      bind 127.0.0.1:%2$d ssl crt %3$s/server.pem ca-file %3$s/ca.pem verify required alpn http/1.1
                      default_backend back_to_app
                    backend back_to_app
                      http-reuse always
                      server app 127.0.0.1:%4$d
                    """.formatted(haproxyFront, haproxyBack, work, app)));

            String credential = "bench-bootstrap-credential-000000";
            Files.writeString(work.resolve("credential"), credential);
            var bridge = new ProcessBuilder(java, "-Xmx256m", "-jar", home.resolve("trust-bridge/target/quarkus-app/quarkus-run.jar").toString())
                    .redirectErrorStream(true).redirectOutput(work.resolve("trust-bridge.log").toFile());
            bridge.environment().putAll(Map.of("QUARKUS_HTTP_PORT", Integer.toString(bridgeHttp), "QUARKUS_GRPC_SERVER_PORT", Integer.toString(bridgeGrpc),
                    "ISTHMUS_CA_DIR", work.resolve("ca").toString(), "ISTHMUS_CLUSTER_NAME", "bench", "ISTHMUS_BOOTSTRAP_TOKEN", credential));
            processes.add(bridge.start());
            awaitHttp("http://127.0.0.1:" + bridgeHttp + "/q/health/ready", Duration.ofSeconds(60));
            awaitHttp("http://127.0.0.1:" + app + "/", Duration.ofSeconds(10));

            Files.writeString(work.resolve("single.yaml"), bootstrap(sidecar, "app", app, null));
            Files.writeString(work.resolve("pair-front.yaml"), bootstrap(pairFront, "back", pairBackInbound, "spiffe://bench.acme.isthmus/ns/bench/sa/back"));
            var singleEnv = Map.of("ISTHMUS_MTLS", "off", "ISTHMUS_BOOTSTRAP", work.resolve("single.yaml").toString());
            // First start: cold (the JVM writes its AOT cache or class-data archive when it exits); second start: with it.
            long c0 = System.nanoTime();
            var cold = sidecar(java, home, work, "single-cold", app, base + 11, base + 12, singleEnv);
            awaitHttp("http://127.0.0.1:" + (base + 12) + "/ready", Duration.ofSeconds(30));
            double coldReadyMs = (System.nanoTime() - c0) / 1e6;
            cold.destroy();
            if (!cold.waitFor(60, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the cold sidecar did not exit within 60 s; see " + work.resolve("single-cold.log"));
            }
            Path archive = archive(work);
            if (!Files.exists(archive)) {
                throw new IllegalStateException("the cold sidecar wrote no " + archive.getFileName() + "; see " + work.resolve("single-cold.log"));
            }
            long t0 = System.nanoTime();
            var single = sidecar(java, home, work, "single", app, base + 11, base + 12, singleEnv);
            processes.add(single);
            awaitHttp("http://127.0.0.1:" + (base + 12) + "/ready", Duration.ofSeconds(30));
            double readyMs = (System.nanoTime() - t0) / 1e6;
            var commonMtls = Map.of("ISTHMUS_TRUST_BRIDGE", "127.0.0.1:" + bridgeGrpc, "ISTHMUS_CONTROLLER_TOKEN_FILE", work.resolve("credential").toString(),
                    "ISTHMUS_CLUSTER", "bench", "ISTHMUS_MTLS", "strict");
            var back = new LinkedHashMap<>(commonMtls);
            back.putAll(Map.of("ISTHMUS_SERVICE", "bench/back", "ISTHMUS_INBOUND_PROTOCOL", "http"));
            processes.add(sidecar(java, home, work, "pair-back", app, pairBackInbound, base + 22, back));
            var front = new LinkedHashMap<>(commonMtls);
            front.putAll(Map.of("ISTHMUS_SERVICE", "bench/front", "ISTHMUS_BOOTSTRAP", work.resolve("pair-front.yaml").toString()));
            processes.add(sidecar(java, home, work, "pair-front", app, base + 23, base + 24, front));
            awaitHttp("http://127.0.0.1:" + (base + 22) + "/ready", Duration.ofSeconds(30));
            awaitHttp("http://127.0.0.1:" + (base + 24) + "/ready", Duration.ofSeconds(30));
            awaitHttp("http://127.0.0.1:" + pairFront + "/", Duration.ofSeconds(10));
            awaitHttp("http://127.0.0.1:" + haproxyFront + "/", Duration.ofSeconds(10));
            // HTTP/2: a sidecar whose cluster speaks HTTP/2 to HAProxy's HTTP/2 app
            Files.writeString(work.resolve("single-h2.yaml"), bootstrap(sidecarH2, "app_h2", appH2, null, true));
            var singleH2 = sidecar(java, home, work, "single-h2", appH2, base + 15, base + 14,
                    Map.of("ISTHMUS_MTLS", "off", "ISTHMUS_BOOTSTRAP", work.resolve("single-h2.yaml").toString()));
            processes.add(singleH2);
            awaitHttp("http://127.0.0.1:" + (base + 14) + "/ready", Duration.ofSeconds(30));
            long singlePid = single.pid();
            long readyRss = rssKiB(singlePid);
            // idle, as the target is put: the JIT's arenas of start-up freed and given back (TrimNativeHeapInterval)
            Thread.sleep(IDLE_WAIT.toMillis());
            long idleRss = rssKiB(singlePid);

            var targets = new LinkedHashMap<String, Integer>();
            targets.put("direct to the app", app);
            targets.put("one sidecar (HTTP/1.1 listener)", sidecar);
            targets.put("HAProxy as the same reverse proxy", haproxyRp);
            targets.put("sidecar -> sidecar over mTLS", pairFront);
            targets.put("HAProxy -> HAProxy over TLS (client certs)", haproxyFront);
            var peak = new AtomicLong(Math.max(readyRss, idleRss));
            var peakH2 = new AtomicLong(rssKiB(singleH2.pid()));
            var sampler = Thread.ofPlatform().daemon().start(() -> {
                while (!Thread.currentThread().isInterrupted()) {
                    peak.accumulateAndGet(rssKiB(singlePid), Math::max);
                    peakH2.accumulateAndGet(rssKiB(singleH2.pid()), Math::max);
                    try {
                        Thread.sleep(200);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
            // warm-up: the JIT compiles the proxy paths
            for (int port : targets.values()) {
                wrk(port, warmup, connections);
            }
            // throughput in rounds: every path once per round, so each ratio compares windows next to each other in time
            var throughput = new LinkedHashMap<String, List<Double>>();
            long edenBefore = edenKiB(work.resolve("single.gc"));
            for (int r = 0; r < rounds; r++) {
                for (var t : targets.entrySet()) {
                    throughput.computeIfAbsent(t.getKey(), k -> new ArrayList<>()).add(wrk(t.getValue(), seconds, connections));
                }
            }
            // latency in rounds too: an added latency is a path's p50 or p99 less the direct path's in the same round
            var p50s = new LinkedHashMap<String, List<Double>>();
            var p99s = new LinkedHashMap<String, List<Double>>();
            for (int r = 0; r < rounds; r++) {
                for (var t : targets.entrySet()) {
                    double[] l = openLoop(plain(t.getValue()), "bench", rate, Math.max(3, seconds), 8);
                    p50s.computeIfAbsent(t.getKey(), k -> new ArrayList<>()).add(l[0]);
                    p99s.computeIfAbsent(t.getKey(), k -> new ArrayList<>()).add(l[1]);
                }
            }
            var h2Targets = new LinkedHashMap<String, Integer>();
            h2Targets.put("direct to the HTTP/2 app", appH2);
            h2Targets.put("one sidecar (HTTP/2 both sides)", sidecarH2);
            h2Targets.put("HAProxy as the same HTTP/2 reverse proxy", haproxyRpH2);
            for (int port : h2Targets.values()) {
                h2load(port, warmup, connections); // warm-up
            }
            long edenAfter = edenKiB(work.resolve("single.gc"));
            var h2Throughput = new LinkedHashMap<String, List<Double>>();
            long edenBeforeH2 = edenKiB(work.resolve("single-h2.gc"));
            for (int r = 0; r < rounds; r++) {
                for (var t : h2Targets.entrySet()) {
                    h2Throughput.computeIfAbsent(t.getKey(), k -> new ArrayList<>()).add(h2load(t.getValue(), seconds, connections));
                }
            }
            long edenAfterH2 = edenKiB(work.resolve("single-h2.gc"));
            sampler.interrupt();
            var h2Table = new StringBuilder();
            h2Throughput.forEach((k, v) -> h2Table.append(String.format(Locale.ROOT, "| %s | %.0f | %s |%n", k, mean(v), rates(v))));
            String ratioH2 = ratio(h2Throughput.get("one sidecar (HTTP/2 both sides)"), h2Throughput.get("HAProxy as the same HTTP/2 reverse proxy"));

            var table = new StringBuilder();
            for (var t : targets.keySet()) {
                boolean direct = t.startsWith("direct");
                table.append(String.format(Locale.ROOT, "| %s | %.0f | %s | %.3f | %.3f | %s | %s |%n", t, mean(throughput.get(t)), rates(throughput.get(t)),
                        median(p50s.get(t)), median(p99s.get(t)),
                        direct ? "" : spread(differences(p50s.get(t), p50s.get("direct to the app")), "%+.3f"),
                        direct ? "" : spread(differences(p99s.get(t), p99s.get("direct to the app")), "%+.3f")));
            }
            String ratioSingle = ratio(throughput.get("one sidecar (HTTP/1.1 listener)"), throughput.get("HAProxy as the same reverse proxy"));
            String ratioPair = ratio(throughput.get("sidecar -> sidecar over mTLS"), throughput.get("HAProxy -> HAProxy over TLS (client certs)"));
            // requests through each sidecar in its rounds: rate x window, as the tools compute the rate from the count
            double allocH1 = (edenAfter - edenBefore) * 1024.0 / (mean(throughput.get("one sidecar (HTTP/1.1 listener)")) * rounds * seconds);
            double allocH2 = (edenAfterH2 - edenBeforeH2) * 1024.0 / (mean(h2Throughput.get("one sidecar (HTTP/2 both sides)")) * rounds * seconds);
            var report = String.format(Locale.ROOT, """
                    ## Proxy data plane (issue 5), %s

                    wrk -t1 -c%d, %d rounds of %d s per path, the paths in turn in each round, after %d s of the same load (HTTP/1.1 keep-alive,
                    a 2-byte answer); req/s is the mean of the rounds, a ratio the median of the rounds' ratios (each from windows next to each
                    other in time; its range in brackets); latency from an open-loop generator at %d req/s
                    over 8 connections, counted from each request's scheduled time, in rounds of its own after the throughput's (every path in
                    turn in each): p50 and p99 are the medians of the rounds', an added latency the median of the rounds' differences to the
                    direct path (its range in brackets); every proxy on one event-loop thread; %d CPUs shared by
                    client, proxies and the app (HAProxy answering itself); the app, each sidecar and the HAProxy reverse proxy are processes of their own, the HAProxy pair is one process. Sidecar JVM: %s, with %s
                    made by a first start.

                    | path | req/s | rounds | p50 ms | p99 ms | added p50 ms | added p99 ms |
                    | --- | --- | --- | --- | --- | --- | --- |
                    %s
                    HTTP/2: h2load -t1 -c%d -m10, %d rounds of %d s per path after %d s of the same load (h2c with prior knowledge, a 2-byte answer):

                    | path | req/s | rounds |
                    | --- | --- | --- |
                    %s
                    | ratio | value | target |
                    | --- | --- | --- |
                    | one sidecar / HAProxy, throughput | %s | >= 0.75 |
                    | one sidecar / HAProxy, HTTP/2 throughput | %s | >= 0.75 |
                    | sidecar pair (mTLS) / HAProxy pair (TLS), throughput | %s | >= 0.75 |
                    | sidecar RSS when ready | %.1f MiB | |
                    | sidecar RSS idle, 10 s after every process was ready | %.1f MiB | <= 64 MiB |
                    | sidecar RSS peak under load | %.1f MiB | <= 128 MiB |
                    | HTTP/2 sidecar RSS peak under load (h2load, 320 streams) | %.1f MiB | <= 128 MiB |
                    | heap allocated per request, HTTP/1.1 sidecar / HTTP/2 sidecar | %.0f / %.0f bytes | |
                    | sidecar start to ready, with its AOT cache or class-data archive | %.0f ms | <= 1000 ms |
                    | sidecar start to ready, cold (first start, none) | %.0f ms | |
                    """, Instant.now().toString().substring(0, 16), connections, rounds, seconds, warmup, rate, Runtime.getRuntime().availableProcessors(), SIDECAR_JVM,
                    AOT_CACHE ? "an AOT cache (-XX:AOTCacheOutput, JDK " + Runtime.version().feature() + ")" : "a class-data archive (-XX:+AutoCreateSharedArchive)",
                    table, connections, rounds, seconds, warmup, h2Table, ratioSingle, ratioH2, ratioPair, readyRss / 1024.0, idleRss / 1024.0, peak.get() / 1024.0, peakH2.get() / 1024.0,
                    allocH1, allocH2, readyMs, coldReadyMs);
            System.out.println();
            System.out.println(report);
            Files.writeString(home.resolve("bench/target/proxy.md"), report);
            return 0;
        } finally {
            for (var p : processes) {
                p.destroy();
            }
            for (var p : processes) {
                p.waitFor(10, TimeUnit.SECONDS);
                p.destroyForcibly();
            }
        }
    }

    static double mean(List<Double> rates) {
        return rates.stream().mapToDouble(Double::doubleValue).average().orElse(0);
    }

    /** The rounds' rates, in thousands of requests a second. */
    static String rates(List<Double> rates) {
        return rates.stream().map(r -> String.format(Locale.ROOT, "%.1fk", r / 1000)).collect(java.util.stream.Collectors.joining(" "));
    }

    /** The median of the rounds' ratios {@code a[i] / b[i]}, with their range: "0.71 (0.64 to 0.78)". */
    static String ratio(List<Double> a, List<Double> b) {
        var ratios = new ArrayList<Double>();
        for (int i = 0; i < a.size(); i++) {
            ratios.add(a.get(i) / b.get(i));
        }
        return spread(ratios, "%.2f");
    }

    /** The rounds' differences {@code a[i] - b[i]}. */
    static List<Double> differences(List<Double> a, List<Double> b) {
        var differences = new ArrayList<Double>();
        for (int i = 0; i < a.size(); i++) {
            differences.add(a.get(i) - b.get(i));
        }
        return differences;
    }

    static double median(List<Double> values) {
        var sorted = new ArrayList<>(values);
        java.util.Collections.sort(sorted);
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }

    /** The median of {@code values} in {@code format}, with their range when there are several: "+0.09 (-0.02 to +0.15)". */
    static String spread(List<Double> values, String format) {
        String median = String.format(Locale.ROOT, format, median(values));
        if (values.size() == 1) {
            return median;
        }
        return median + String.format(Locale.ROOT, " (" + format + " to " + format + ")", java.util.Collections.min(values), java.util.Collections.max(values));
    }

    /** One HAProxy process with one thread, {@code body} after the common global and defaults sections. */
    private static Process haproxy(Path work, String name, String body) throws java.io.IOException {
        Path cfg = work.resolve("haproxy-" + name + ".cfg");
        Files.writeString(cfg, """
                global
                  maxconn 4000
                  nbthread 1
                defaults
                  mode http
                  timeout connect 2s
                  timeout client 30s
                  timeout server 30s
                  option http-keep-alive
                """ + body);
        return new ProcessBuilder("haproxy", "-f", cfg.toString()).redirectErrorStream(true)
                .redirectOutput(work.resolve("haproxy-" + name + ".log").toFile()).start();
    }

    /** The AOT cache or class-data archive the cold start writes and the other sidecars read. */
    private static Path archive(Path work) {
        return work.resolve(AOT_CACHE ? "sidecar-lite.aot" : "sidecar-lite.jsa");
    }

    private static Process sidecar(String java, Path home, Path work, String name, int app, int inbound, int admin, Map<String, String> env)
            throws Exception {
        var command = new ArrayList<>(List.of(java));
        command.addAll(List.of(SIDECAR_JVM.split("\\s+")));
        if (!AOT_CACHE) {
            command.addAll(List.of("-XX:+AutoCreateSharedArchive", "-XX:SharedArchiveFile=" + archive(work)));
        } else if (name.endsWith("-cold")) {
            command.add("-XX:AOTCacheOutput=" + archive(work)); // written as the cold start exits
        } else {
            // AOTMode=on: a cache the JVM cannot use stops it, rather than a start without it reported as one with it
            command.addAll(List.of("-XX:AOTMode=on", "-XX:AOTCache=" + archive(work)));
        }
        command.add("-Xlog:gc+heap=info:file=" + work.resolve(name + ".gc"));
        command.addAll(List.of("-jar", home.resolve("sidecar-lite/target/sidecar-lite.jar").toString()));
        var pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(work.resolve(name + ".log").toFile());
        pb.environment().putAll(Map.of("ISTHMUS_APP", "127.0.0.1:" + app, "ISTHMUS_INBOUND", "127.0.0.1:" + inbound, "ISTHMUS_ADMIN",
                "127.0.0.1:" + admin, "ISTHMUS_IO_THREADS", "1", "ISTHMUS_INSTANCE", name));
        pb.environment().putAll(env);
        return pb.start();
    }

    private static String bootstrap(int listen, String cluster, int endpoint, String spiffeId) {
        return bootstrap(listen, cluster, endpoint, spiffeId, false);
    }

    /** @param http2 the cluster's endpoint speaks HTTP/2 (Envoy's {@code HttpProtocolOptions}) */
    private static String bootstrap(int listen, String cluster, int endpoint, String spiffeId, boolean http2) {
        String tls = (spiffeId == null ? "" : """
                    transport_socket:
                      name: envoy.transport_sockets.tls
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
                        common_tls_context:
                          validation_context:
                            match_typed_subject_alt_names:
                            - { san_type: URI, matcher: { exact: "%s" } }
                """.formatted(spiffeId)) + (http2 ? """
                    typed_extension_protocol_options:
                      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                        explicit_http_config: { http2_protocol_options: {} }
                """ : "");
        return """
                static_resources:
                  listeners:
                  - name: http
                    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: http
                          route_config:
                            name: all
                            virtual_hosts:
                            - { name: all, domains: [ "*" ], routes: [ { match: { prefix: "/" }, route: { cluster: %s } } ] }
                  clusters:
                  - name: %s
                    type: STATIC
                    connect_timeout: 1s
                %s    load_assignment:
                      cluster_name: %s
                      endpoints:
                      - lb_endpoints:
                        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }
                """.formatted(listen, cluster, cluster, tls, cluster, endpoint);
    }

    static void certs(Path dir) throws Exception {
        sh(dir, "openssl ecparam -name prime256v1 -genkey -noout -out ca.key && "
                + "openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 2 -out ca.pem && "
                + "for n in server client; do openssl ecparam -name prime256v1 -genkey -noout -out $n.key && "
                + "openssl req -new -key $n.key -subj /CN=$n -out $n.csr && "
                + "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out $n.crt && "
                + "cat $n.crt $n.key > $n.pem; done");
    }

    static void sh(Path dir, String script) throws Exception {
        var p = new ProcessBuilder("bash", "-c", script).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("certs.log").toFile()).start();
        if (p.waitFor() != 0) {
            throw new IllegalStateException("making the TLS material failed; see " + dir.resolve("certs.log"));
        }
    }

    static void awaitHttp(String url, Duration timeout) throws Exception {
        Instant deadline = Instant.now().plus(timeout);
        while (true) {
            try {
                if (HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.discarding())
                        .statusCode() == 200) {
                    return;
                }
            } catch (java.io.IOException e) {
                // not yet
            }
            if (Instant.now().isAfter(deadline)) {
                throw new IllegalStateException(url + " did not answer 200 within " + timeout.toSeconds() + " s; see the logs in bench/target");
            }
            Thread.sleep(50);
        }
    }

    private static double wrk(int port, int seconds, int connections) throws Exception {
        var p = new ProcessBuilder("wrk", "-t1", "-c" + connections, "-d" + seconds + "s", "http://127.0.0.1:" + port + "/").redirectErrorStream(true)
                .start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor();
        var m = Pattern.compile("Requests/sec:\\s+([0-9.]+)").matcher(out);
        if (!m.find()) {
            throw new IllegalStateException("wrk printed no rate for port " + port + ":\n" + out);
        }
        if (out.contains("Non-2xx")) {
            throw new IllegalStateException("wrk saw errors through port " + port + ":\n" + out);
        }
        return Double.parseDouble(m.group(1));
    }

    /** h2load's rate through {@code port}: h2c with prior knowledge, {@code connections} connections of 10 streams each. */
    private static double h2load(int port, int seconds, int connections) throws Exception {
        var p = new ProcessBuilder("h2load", "-t1", "-c" + connections, "-m10", "-D", Integer.toString(seconds), "http://127.0.0.1:" + port + "/")
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor();
        var rate = Pattern.compile("finished in [^,]+, ([0-9.]+) req/s").matcher(out);
        var done = Pattern.compile("requests: (\\d+) total, \\d+ started, (\\d+) done, (\\d+) succeeded").matcher(out);
        var codes = Pattern.compile("status codes: (\\d+) 2xx").matcher(out);
        if (!rate.find() || !done.find() || !codes.find()) {
            throw new IllegalStateException("h2load printed no rate for port " + port + ":\n" + out);
        }
        if (!done.group(2).equals(done.group(3)) || !codes.group(1).equals(done.group(3))) {
            throw new IllegalStateException("h2load saw failed or non-2xx requests through port " + port + ":\n" + out);
        }
        return Double.parseDouble(rate.group(1));
    }

    /** Opens one connection of a load generator (plain TCP, or TLS with its handshake done). */
    @FunctionalInterface
    interface Connector {
        Socket open() throws Exception;
    }

    /** Plain keep-alive connections to a local port. */
    static Connector plain(int port) {
        return () -> {
            var s = new Socket("127.0.0.1", port);
            s.setTcpNoDelay(true);
            s.setSoTimeout(10_000);
            return s;
        };
    }

    /**
     * Sends {@code rate} requests per second for {@code seconds} over {@code conns} keep-alive
     * connections (opened before the clock starts), each request timed from its scheduled moment;
     * returns p50 and p99 in ms.
     */
    static double[] openLoop(Connector connector, String host, int rate, int seconds, int conns) throws Exception {
        List<Long> latencies = Collections.synchronizedList(new ArrayList<>());
        long intervalNanos = 1_000_000_000L * conns / rate;
        int perConn = rate * seconds / conns;
        var sockets = new ArrayList<Socket>();
        for (int c = 0; c < conns; c++) {
            sockets.add(connector.open());
        }
        long start = System.nanoTime() + 50_000_000L;
        byte[] req = ("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
        var threads = new ArrayList<Thread>();
        for (int c = 0; c < conns; c++) {
            long offset = intervalNanos * c / conns;
            var socket = sockets.get(c);
            threads.add(Thread.ofPlatform().start(() -> {
                try (var s = socket) {
                    OutputStream out = s.getOutputStream();
                    InputStream in = new BufferedInputStream(s.getInputStream());
                    for (int i = 0; i < perConn; i++) {
                        long due = start + offset + i * intervalNanos;
                        long wait = due - System.nanoTime();
                        if (wait > 0) {
                            TimeUnit.NANOSECONDS.sleep(wait);
                        }
                        out.write(req);
                        out.flush();
                        readResponse(in);
                        latencies.add(System.nanoTime() - due);
                    }
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }));
        }
        for (var t : threads) {
            t.join();
        }
        var sorted = new ArrayList<>(latencies);
        Collections.sort(sorted);
        return new double[] {sorted.get(sorted.size() / 2) / 1e6, sorted.get((int) (sorted.size() * 0.99)) / 1e6};
    }

    static void readResponse(InputStream in) throws Exception {
        var head = new StringBuilder();
        int c;
        while ((c = in.read()) >= 0) {
            head.append((char) c);
            if (head.length() >= 4 && head.charAt(head.length() - 1) == '\n' && head.substring(head.length() - 4).equals("\r\n\r\n")) {
                break;
            }
        }
        var m = Pattern.compile("(?i)content-length:\\s*(\\d+)").matcher(head);
        int len = m.find() ? Integer.parseInt(m.group(1)) : 0;
        in.readNBytes(len);
        if (!head.toString().startsWith("HTTP/1.1 200")) {
            throw new IllegalStateException("answer: " + head);
        }
    }

    /**
     * The sum of eden's occupancy at the start of every young collection in a sidecar's GC log
     * ({@code -Xlog:gc+heap=info}: "DefNew: ... Eden: 4416K(4416K)->0K"): what it allocated on its
     * heap so far, but for what eden holds now (at most one eden, a few MiB, against the GiBs a
     * benchmark window allocates).
     */
    static long edenKiB(Path gcLog) throws java.io.IOException {
        var eden = Pattern.compile("Eden: (\\d+)K\\(");
        long sum = 0;
        try (var lines = Files.lines(gcLog)) {
            for (String line : (Iterable<String>) lines::iterator) {
                var m = eden.matcher(line);
                if (m.find()) {
                    sum += Long.parseLong(m.group(1));
                }
            }
        }
        return sum;
    }

    static long rssKiB(long pid) {
        return statusKiB(pid, "VmRSS:");
    }

    /** A size field of {@code /proc/PID/status} ({@code VmRSS:}, {@code VmHWM:}...) in KiB; 0 when the process is gone. */
    static long statusKiB(long pid, String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith(field)) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (Exception e) {
            // gone
        }
        return 0;
    }
}
