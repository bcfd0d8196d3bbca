package dev.isthmus.bench;

import dev.isthmus.api.trust.v1.IssueRequest;
import dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;

/**
 * The trust bridge's signing benchmark (issue 4): a real trust-bridge process (embedded backend)
 * signs P-256 CSRs over gRPC from each {@code --concurrency} count of client threads in turn; then {@code openssl x509
 * -req} signs the same CSRs with the same root key, two processes at a time (this machine's cores),
 * one process per certificate as the command works. Latency is per certificate, client-side.
 */
final class CsrSigning {

    static int run(String[] args) throws Exception {
        int csrs = 6000;
        int warmup = 12000;
        int[] concurrency = {2, 4};
        int opensslCount = 400;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--csrs" -> csrs = Integer.parseInt(args[i + 1]);
                case "--warmup" -> warmup = Integer.parseInt(args[i + 1]);
                case "--concurrency" -> concurrency = java.util.Arrays.stream(args[i + 1].split(",")).mapToInt(Integer::parseInt).toArray();
                case "--openssl" -> opensslCount = Integer.parseInt(args[i + 1]);
                default -> {
                    System.err.println("csr-signing: unknown option " + args[i]);
                    return 2;
                }
            }
        }
        Path home = BenchFederation.home();
        Path jar = home.resolve("trust-bridge/target/quarkus-app/quarkus-run.jar");
        Path work = Files.createDirectories(home.resolve("bench/target/csr-signing-" + System.currentTimeMillis()));
        String credential = "bench-bootstrap-credential-000000";
        int httpPort = 24110;
        int grpcPort = 24111;
        var command = new ArrayList<String>(List.of(BenchFederation.java(), "-Xmx512m"));
        String extra = System.getenv("ISTHMUS_BENCH_JVM_OPTS"); // e.g. -XX:StartFlightRecording=filename=bridge.jfr to profile
        if (extra != null && !extra.isBlank()) {
            command.addAll(List.of(extra.trim().split("\\s+")));
        }
        command.addAll(List.of("-jar", jar.toString()));
        var pb = new ProcessBuilder(command)
                .redirectErrorStream(true).redirectOutput(work.resolve("trust-bridge.log").toFile());
        pb.environment().putAll(java.util.Map.of("QUARKUS_HTTP_PORT", Integer.toString(httpPort), "QUARKUS_GRPC_SERVER_PORT",
                Integer.toString(grpcPort), "ISTHMUS_CA_DIR", work.resolve("ca").toString(), "ISTHMUS_CLUSTER_NAME", "bench",
                "ISTHMUS_BOOTSTRAP_TOKEN", credential));
        Process bridge = pb.start();
        var channel = NettyChannelBuilder.forAddress("127.0.0.1", grpcPort).usePlaintext().build();
        try {
            var http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
            Instant deadline = Instant.now().plusSeconds(60);
            while (true) {
                try {
                    if (http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + "/q/health/ready")).build(),
                            HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
                        break;
                    }
                } catch (java.io.IOException e) {
                    // starting
                }
                if (Instant.now().isAfter(deadline) || !bridge.isAlive()) {
                    System.err.println("csr-signing: the trust bridge did not become ready; see " + work.resolve("trust-bridge.log"));
                    return 1;
                }
                Thread.sleep(200);
            }
            System.out.printf("making %d P-256 CSRs...%n", csrs);
            List<String> pems = new ArrayList<>();
            var g = KeyPairGenerator.getInstance("EC");
            g.initialize(new ECGenParameterSpec("secp256r1"));
            for (int i = 0; i < csrs; i++) {
                var pair = g.generateKeyPair();
                var out = new StringWriter();
                try (var w = new JcaPEMWriter(out)) {
                    w.writeObject(new JcaPKCS10CertificationRequestBuilder(new X500Name("CN=w" + i), pair.getPublic())
                            .build(new JcaContentSignerBuilder("SHA256withECDSA").build(pair.getPrivate())));
                }
                pems.add(out.toString());
            }
            String id = "spiffe://bench.acme.isthmus/ns/shop/sa/orders";
            var stub = WorkloadCertificatesGrpc.newBlockingStub(channel);
            for (int i = 0; i < warmup; i++) { // warm-up: the JIT compiles the signing path (the same CSRs again, as a renewal would)
                stub.withDeadlineAfter(10, TimeUnit.SECONDS).issue(IssueRequest.newBuilder().setCsrPem(pems.get(i % pems.size())).setSpiffeId(id).setCredential(credential).build());
            }
            var rows = new StringBuilder();
            double bestRate = 0;
            for (int threads : concurrency) {
                var r = measure(stub, pems, id, credential, threads);
                bestRate = Math.max(bestRate, r[0]);
                rows.append(String.format(Locale.ROOT, "| trust bridge, gRPC Issue, %d client threads | %d | %.0f | %.2f ms | %.2f ms |%n", threads,
                        pems.size(), r[0], r[1], r[2]));
            }

            Path ca = work.resolve("ca");
            int n = Math.min(opensslCount, pems.size());
            for (int i = 0; i < n; i++) {
                Files.writeString(work.resolve("csr-" + i + ".pem"), pems.get(i));
            }
            List<Long> opensslLatencies = Collections.synchronizedList(new ArrayList<>());
            var nextOpenssl = new AtomicInteger();
            ExecutorService two = Executors.newFixedThreadPool(2);
            long o0 = System.nanoTime();
            var ofs = new ArrayList<Future<?>>();
            for (int c = 0; c < 2; c++) {
                ofs.add(two.submit(() -> {
                    int i;
                    while ((i = nextOpenssl.getAndIncrement()) < n) {
                        long s = System.nanoTime();
                        var p = new ProcessBuilder("openssl", "x509", "-req", "-in", work.resolve("csr-" + i + ".pem").toString(), "-CA",
                                ca.resolve("root-cert.pem").toString(), "-CAkey", ca.resolve("root-key.pem").toString(), "-set_serial",
                                Integer.toString(i + 1), "-days", "1", "-sha256", "-out", work.resolve("cert-" + i + ".pem").toString())
                                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
                        if (p.waitFor() != 0) {
                            throw new IllegalStateException("openssl x509 -req failed for CSR " + i);
                        }
                        opensslLatencies.add(System.nanoTime() - s);
                    }
                    return null;
                }));
            }
            for (var f : ofs) {
                f.get();
            }
            double opensslSeconds = (System.nanoTime() - o0) / 1e9;
            two.shutdown();

            var report = String.format(Locale.ROOT, """
                    ## Workload certificate signing (issue 4), %s

                    P-256 CSRs; the trust bridge (embedded backend, one JVM, -Xmx512m) over gRPC after %d warm-up
                    requests, from each number of client threads in turn (CSR checks + signing + answer), against `openssl x509 -req` with the same root key, two processes at a time; %d CPUs.

                    | signer | certificates | certs/s | p50 | p99 |
                    | --- | --- | --- | --- | --- |
                    %s| openssl x509 -req (a process per certificate) | %d | %.0f | %.2f ms | %.2f ms |
                    | ratio bridge (best row) / openssl (throughput) | | %.1fx | | |
                    """, Instant.now().toString().substring(0, 16), warmup, Runtime.getRuntime().availableProcessors(), rows, n, n / opensslSeconds, pct(opensslLatencies, 0.5),
                    pct(opensslLatencies, 0.99), bestRate / (n / opensslSeconds));
            System.out.println();
            System.out.println(report);
            Files.writeString(home.resolve("bench/target/csr-signing.md"), report);
            return 0;
        } finally {
            channel.shutdownNow();
            bridge.destroy();
            bridge.waitFor(10, TimeUnit.SECONDS);
            bridge.destroyForcibly();
        }
    }

    /** Issues every CSR from {@code threads} client threads; returns certs/s, p50 ms, p99 ms. */
    private static double[] measure(WorkloadCertificatesGrpc.WorkloadCertificatesBlockingStub stub, List<String> pems, String id, String credential,
            int threads) throws Exception {
        List<Long> latencies = Collections.synchronizedList(new ArrayList<>());
        var next = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        long t0 = System.nanoTime();
        var futures = new ArrayList<Future<?>>();
        for (int c = 0; c < threads; c++) {
            futures.add(pool.submit(() -> {
                int i;
                while ((i = next.getAndIncrement()) < pems.size()) {
                    long s = System.nanoTime();
                    stub.withDeadlineAfter(10, TimeUnit.SECONDS).issue(IssueRequest.newBuilder().setCsrPem(pems.get(i)).setSpiffeId(id)
                            .setCredential(credential).build());
                    latencies.add(System.nanoTime() - s);
                }
                return null;
            }));
        }
        for (var f : futures) {
            f.get();
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        pool.shutdown();
        return new double[] {pems.size() / seconds, pct(latencies, 0.5), pct(latencies, 0.99)};
    }

    static double pct(List<Long> nanos, double q) {
        var sorted = new ArrayList<>(nanos);
        Collections.sort(sorted);
        return sorted.isEmpty() ? Double.NaN : sorted.get((int) Math.min(sorted.size() - 1, Math.floor(q * sorted.size()))) / 1e6;
    }
}
