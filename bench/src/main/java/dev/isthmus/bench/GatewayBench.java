package dev.isthmus.bench;

import java.io.BufferedInputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

/**
 * {@code bench/run gateway}: the east-west gateway's TLS passthrough against HAProxy in TCP mode
 * routing on {@code req.ssl_sni}, with the same backend (an HAProxy terminating TLS and answering
 * itself), in one run on this machine:
 * <ul>
 *   <li>new TLS sessions per second: wrk over HTTPS with {@code Connection: close}, so every request
 *       is a new TCP connection and a full TLS 1.3 handshake through the router;</li>
 *   <li>throughput of long flows: wrk over HTTPS keep-alive fetching a 32 KiB answer;</li>
 *   <li>added latency p50/p99: an open-loop generator at a fixed rate over kept-alive TLS connections;</li>
 *   <li>RSS with N concurrent idle flows (TLS handshakes completed through the router, then silent).</li>
 * </ul>
 * The SNI is {@code localhost} (wrk sends the URL's host); the gateway's cost of the lookup does not
 * depend on the name.
 */
final class GatewayBench {

    static final String GATEWAY_JVM = System.getenv().getOrDefault("ISTHMUS_BENCH_GATEWAY_OPTS", "-Xms32m -Xmx256m -XX:+UseSerialGC");

    private GatewayBench() {
    }

    static int run(String[] args) throws Exception {
        int base = 24400;
        int seconds = 8;
        int rate = 2000;
        int connections = 32;
        int idle = 9_500;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--base-port" -> base = Integer.parseInt(args[i + 1]);
                case "--seconds" -> seconds = Integer.parseInt(args[i + 1]);
                case "--rate" -> rate = Integer.parseInt(args[i + 1]);
                case "--connections" -> connections = Integer.parseInt(args[i + 1]);
                case "--idle" -> idle = Integer.parseInt(args[i + 1]);
                default -> {
                    System.err.println("gateway: unknown option " + args[i]);
                    return 2;
                }
            }
        }
        Path home = BenchFederation.home();
        Path work = Files.createDirectories(home.resolve("bench/target/gateway-" + System.currentTimeMillis()));
        String java = BenchFederation.java();
        int backend = base;
        int haproxy = base + 1;
        int gateway = base + 2;
        int gatewayAdmin = base + 3;
        List<Process> processes = new ArrayList<>();
        try {
            ProxyBench.certs(work);
            byte[] body = new byte[32 * 1024];
            Arrays.fill(body, (byte) 120);
            Files.write(work.resolve("big.bin"), body);
            Files.writeString(work.resolve("backend.cfg"), """
                    global
                      maxconn 9900
                      nbthread 1
                      tune.bufsize 65536
                    defaults
                      mode http
                      timeout connect 2s
                      timeout client 120s
                      timeout server 120s
                      option http-keep-alive
                    frontend tls
                      bind 127.0.0.1:%1$d ssl crt %2$s/server.pem alpn http/1.1
                      http-request return status 200 content-type application/octet-stream file %2$s/big.bin if { path_beg /big }
                      http-request return status 200 content-type text/plain string "ok"
                    """.formatted(backend, work));
            Files.writeString(work.resolve("router.cfg"), """
                    global
                      maxconn 9900
                      nbthread 1
                    defaults
                      mode tcp
                      timeout connect 2s
                      timeout client 120s
                      timeout server 120s
                    frontend sni
                      bind 127.0.0.1:%1$d
                      tcp-request inspect-delay 5s
                      tcp-request content accept if { req_ssl_hello_type 1 }
                      use_backend catalog if { req.ssl_sni -i localhost }
                    backend catalog
                      server b 127.0.0.1:%2$d
                    """.formatted(haproxy, backend));
            processes.add(new ProcessBuilder("haproxy", "-f", work.resolve("backend.cfg").toString()).redirectErrorStream(true)
                    .redirectOutput(work.resolve("backend.log").toFile()).start());
            var router = new ProcessBuilder("haproxy", "-f", work.resolve("router.cfg").toString()).redirectErrorStream(true)
                    .redirectOutput(work.resolve("router.log").toFile()).start();
            processes.add(router);
            var command = new ArrayList<>(List.of(java));
            command.addAll(List.of(GATEWAY_JVM.split("\\s+")));
            command.addAll(List.of("-jar", home.resolve("east-west-gateway/target/east-west-gateway.jar").toString()));
            var pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(work.resolve("gateway.log").toFile());
            pb.environment().putAll(Map.of("ISTHMUS_LISTEN", "127.0.0.1:" + gateway, "ISTHMUS_ADMIN", "127.0.0.1:" + gatewayAdmin,
                    "ISTHMUS_IO_THREADS", "1", "ISTHMUS_ROUTES", "localhost=127.0.0.1:" + backend, "ISTHMUS_MAX_CONNECTIONS", "20000",
                    "ISTHMUS_MAX_CONNECTIONS_PER_SOURCE", "20000", "ISTHMUS_CLUSTER", "bench"));
            var gw = pb.start();
            processes.add(gw);
            ProxyBench.awaitHttp("http://127.0.0.1:" + gatewayAdmin + "/ready", Duration.ofSeconds(30));
            SSLSocketFactory tls = trustAll();
            for (int port : List.of(backend, haproxy, gateway)) {
                awaitTls(tls, port);
            }
            long gatewayPid = gw.pid();
            long routerPid = router.pid();
            long gwIdleRss = ProxyBench.rssKiB(gatewayPid);
            long haIdleRss = ProxyBench.rssKiB(routerPid);

            var targets = new LinkedHashMap<String, Integer>();
            targets.put("direct to the backend", backend);
            targets.put("HAProxy, TCP mode on req.ssl_sni", haproxy);
            targets.put("east-west gateway", gateway);
            // warm-up: the JIT compiles the gateway's accept, SNI and splice paths
            for (int port : targets.values()) {
                wrk(port, 4, connections, "/", true);
                wrk(port, 3, connections, "/big", false);
            }
            var sessions = new LinkedHashMap<String, double[]>();
            var flows = new LinkedHashMap<String, double[]>();
            var latency = new LinkedHashMap<String, double[]>();
            for (var t : targets.entrySet()) {
                sessions.put(t.getKey(), wrk(t.getValue(), seconds, connections, "/", true));
                flows.put(t.getKey(), wrk(t.getValue(), seconds, connections, "/big", false));
                latency.put(t.getKey(), ProxyBench.openLoop(() -> open(tls, t.getValue()), "localhost", rate, Math.max(3, seconds / 2), 8));
            }
            long gwBusyRss = ProxyBench.rssKiB(gatewayPid);

            // N idle flows through each router in turn
            long gwIdleFlowsRss = idleFlows(tls, gateway, idle, gatewayPid);
            long haIdleFlowsRss = idleFlows(tls, haproxy, idle, routerPid);

            double[] direct = latency.get("direct to the backend");
            var table = new StringBuilder();
            for (var t : targets.keySet()) {
                double[] l = latency.get(t);
                table.append(String.format(Locale.ROOT, "| %s | %.0f | %.1f | %.3f | %.3f | %s | %s |%n", t, sessions.get(t)[0], flows.get(t)[1] / 1048576.0,
                        l[0], l[1], t.startsWith("direct") ? "" : String.format(Locale.ROOT, "%+.3f", l[0] - direct[0]),
                        t.startsWith("direct") ? "" : String.format(Locale.ROOT, "%+.3f", l[1] - direct[1])));
            }
            String ha = "HAProxy, TCP mode on req.ssl_sni";
            String gwName = "east-west gateway";
            double perFlowKiB = (gwIdleFlowsRss - gwIdleRss) / (double) idle;
            var report = String.format(Locale.ROOT, """
                    ## East-west gateway TLS passthrough (issue 6), %s

                    Same backend for every path: HAProxy terminating TLS 1.3 (P-256) and answering itself. New sessions: wrk -t1 -c%d
                    for %d s with `Connection: close` (each request a new TCP connection and a full handshake through the router);
                    long flows: wrk -t1 -c%d for %d s keep-alive fetching 32 KiB; latency: open loop at %d req/s over 8 kept-alive TLS
                    connections, from each request's scheduled time. Gateway JVM: %s, one event-loop thread; HAProxy nbthread 1.
                    %d CPUs shared by the load generators, the routers and the backend.

                    | path | new TLS sessions/s | MiB/s (long flows) | p50 ms | p99 ms | added p50 ms | added p99 ms |
                    | --- | --- | --- | --- | --- | --- | --- |
                    %s
                    | ratio or figure | value | target |
                    | --- | --- | --- |
                    | gateway / HAProxy, new TLS sessions/s | %.2f | >= 0.80 |
                    | gateway / HAProxy, long-flow throughput | %.2f | >= 0.80 |
                    | gateway RSS: idle / after the load | %.1f / %.1f MiB | |
                    | gateway RSS with %d idle flows | %.1f MiB (%.1f KiB per flow; at 10,000: %.1f MiB) | <= 256 MiB at 10,000 |
                    | HAProxy RSS with %d idle flows | %.1f MiB (idle before: %.1f MiB) | |

                    %d idle flows, not 10,000: this machine's hard limit of open files per process is %s, and the gateway holds two
                    descriptors per flow; the figure at 10,000 is extrapolated per flow.
                    """, Instant.now().toString().substring(0, 16), connections, seconds, connections, seconds, rate, GATEWAY_JVM,
                    Runtime.getRuntime().availableProcessors(), table,
                    sessions.get(gwName)[0] / sessions.get(ha)[0], flows.get(gwName)[1] / flows.get(ha)[1],
                    gwIdleRss / 1024.0, gwBusyRss / 1024.0, idle, gwIdleFlowsRss / 1024.0, perFlowKiB,
                    (gwIdleRss + perFlowKiB * 10_000) / 1024.0, idle, haIdleFlowsRss / 1024.0, haIdleRss / 1024.0, idle, openFileLimit());
            System.out.println();
            System.out.println(report);
            Files.writeString(home.resolve("bench/target/gateway.md"), report);
            return 0;
        } finally {
            for (var p : processes) {
                p.destroy();
            }
            for (var p : processes) {
                p.waitFor(40, TimeUnit.SECONDS);
                p.destroyForcibly();
            }
        }
    }

    private static String openFileLimit() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/limits"))) {
                if (line.startsWith("Max open files")) {
                    return line.replaceAll("\\s+", " ").split(" ")[4];
                }
            }
        } catch (Exception e) {
            // unknown
        }
        return "unknown";
    }

    /** A client trusting any certificate (the bench's own CA), with the JDK's TLS; SNI is the host name given. */
    static SSLSocketFactory trustAll() throws Exception {
        var ctx = SSLContext.getInstance("TLSv1.3");
        ctx.init(null, new TrustManager[] {new X509TrustManager() {
            @Override
            public void checkClientTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public void checkServerTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public X509Certificate[] getAcceptedIssuers() {
                return new X509Certificate[0];
            }
        }}, new SecureRandom());
        return ctx.getSocketFactory();
    }

    private static SSLSocket open(SSLSocketFactory tls, int port) throws Exception {
        var s = (SSLSocket) tls.createSocket("localhost", port);
        s.setTcpNoDelay(true);
        s.setSoTimeout(20_000);
        var params = s.getSSLParameters();
        params.setServerNames(List.of(new javax.net.ssl.SNIHostName("localhost"))); // the JDK sends no SNI for a name without a dot
        s.setSSLParameters(params);
        s.startHandshake();
        return s;
    }

    private static void awaitTls(SSLSocketFactory tls, int port) throws Exception {
        Instant deadline = Instant.now().plusSeconds(20);
        while (true) {
            try (var s = open(tls, port)) {
                s.getOutputStream().write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                ProxyBench.readResponse(new BufferedInputStream(s.getInputStream()));
                return;
            } catch (Exception e) {
                if (Instant.now().isAfter(deadline)) {
                    throw new IllegalStateException("no TLS answer through port " + port + " within 20 s: " + e);
                }
                Thread.sleep(100);
            }
        }
    }

    /** wrk over HTTPS; returns requests/s and bytes/s. */
    private static double[] wrk(int port, int seconds, int connections, String path, boolean close) throws Exception {
        var command = new ArrayList<>(List.of("wrk", "-t1", "-c" + connections, "-d" + seconds + "s"));
        if (close) {
            command.addAll(List.of("-H", "Connection: close"));
        }
        command.add("https://localhost:" + port + path);
        var p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor();
        var rate = Pattern.compile("Requests/sec:\\s+([0-9.]+)").matcher(out);
        var transfer = Pattern.compile("Transfer/sec:\\s+([0-9.]+)([KMG]?B)").matcher(out);
        if (!rate.find() || !transfer.find()) {
            throw new IllegalStateException("wrk printed no rate for port " + port + ":\n" + out);
        }
        if (out.contains("Non-2xx")) {
            throw new IllegalStateException("wrk saw errors through port " + port + ":\n" + out);
        }
        double unit = switch (transfer.group(2)) {
            case "KB" -> 1024;
            case "MB" -> 1048576;
            case "GB" -> 1073741824.0;
            default -> 1;
        };
        return new double[] {Double.parseDouble(rate.group(1)), Double.parseDouble(transfer.group(1)) * unit};
    }

    /** Opens {@code n} TLS connections through {@code port} (handshakes complete), holds them idle, returns the router's RSS, closes them. */
    private static long idleFlows(SSLSocketFactory tls, int port, int n, long routerPid) throws Exception {
        var open = new ConcurrentLinkedQueue<Socket>();
        var failed = new AtomicInteger();
        try (var pool = Executors.newFixedThreadPool(16)) {
            for (int i = 0; i < n; i++) {
                pool.execute(() -> {
                    try {
                        open.add(open(tls, port));
                    } catch (Exception e) {
                        failed.incrementAndGet();
                    }
                });
            }
        }
        if (failed.get() > 0) {
            System.err.printf("gateway bench: %d of %d idle flows through port %d could not be opened%n", failed.get(), n, port);
        }
        Thread.sleep(2000);
        long rss = ProxyBench.rssKiB(routerPid);
        for (Socket s : open) {
            try {
                s.close();
            } catch (Exception ignored) {
                // closing
            }
        }
        Thread.sleep(3000);
        return rss;
    }
}
