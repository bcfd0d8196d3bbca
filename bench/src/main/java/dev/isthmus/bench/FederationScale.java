package dev.isthmus.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.cli.local.ControllerClient;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The controller's scale benchmark (issue 3): a simulated federation of N clusters, each a real
 * federation-controller process with S services x E endpoints from its static registry file, on one
 * real nats-server. N-1 form the federation through the REST join flow; then the N-th, already
 * started with its own registry loaded, joins once the federation has settled (15 s, past the first
 * writes of the members' registries to disk), and the harness measures:
 * <ul>
 *   <li>the time from its join request to its state {@code Active}, which it reports only once it
 *       holds every member's full registry (the sync timeout is raised so it cannot fire first), and
 *       checks the catalog's size;</li>
 *   <li>the NATS bytes the server sent to that controller meanwhile ({@code /connz} out_bytes);</li>
 *   <li>its heap after a full GC ({@code jcmd GC.run}, then {@code jvm_memory_used_bytes{area="heap"}});</li>
 *   <li>then C single-endpoint changes in the first cluster's file: the propagation latency to every
 *       other controller, from each controller's {@code isthmus_federation_propagation_seconds}
 *       (the change's time in the sender's registry to the delta applied, same machine clock).</li>
 * </ul>
 * The nats-server runs with {@code max_payload: 128KB}, so full registries travel compressed and
 * in parts, as a larger registry would at the default 1 MiB.
 */
final class FederationScale {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String ADMIN = "bench-admin-credential-00000000";
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();

    private int clusters = 10;
    private int services = 1000;
    private int endpoints = 10;
    private int changes = 60;
    private int basePort = 24000;
    private final List<Process> processes = new ArrayList<>();
    private Path work;

    static int run(String[] args) throws Exception {
        var b = new FederationScale();
        for (int i = 0; i < args.length; i++) {
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--clusters" -> b.clusters = Integer.parseInt(v);
                case "--services" -> b.services = Integer.parseInt(v);
                case "--endpoints" -> b.endpoints = Integer.parseInt(v);
                case "--changes" -> b.changes = Integer.parseInt(v);
                case "--base-port" -> b.basePort = Integer.parseInt(v);
                default -> {
                    System.err.println("federation-scale: unknown option " + args[i]);
                    return 2;
                }
            }
            i++;
        }
        if (b.clusters < 2 || b.clusters > 80) {
            System.err.println("federation-scale: --clusters must be 2-80");
            return 2;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(b::stopAll));
        try {
            return b.go();
        } finally {
            b.stopAll();
        }
    }

    private static Path home() {
        return BenchFederation.home();
    }

    private String name(int i) {
        return "c" + i;
    }

    private int httpPort(int i) {
        return basePort + 10 + i;
    }

    private ControllerClient api(int i) {
        return new ControllerClient(URI.create("http://127.0.0.1:" + httpPort(i)), ADMIN);
    }

    private void log(String fmt, Object... args) {
        System.out.printf(Locale.ROOT, "[%s] " + fmt + "%n", concat(Instant.now().toString().substring(11, 23), args));
    }

    private static Object[] concat(Object first, Object[] rest) {
        Object[] out = new Object[rest.length + 1];
        out[0] = first;
        System.arraycopy(rest, 0, out, 1, rest.length);
        return out;
    }

    private int go() throws Exception {
        work = Files.createDirectories(home().resolve("bench/target/federation-scale-" + System.currentTimeMillis()));
        Path jar = home().resolve("federation-controller/target/quarkus-app/quarkus-run.jar");
        if (!Files.exists(jar)) {
            System.err.println("federation-scale: " + jar + " is missing; build with ./mvnw -DskipTests install");
            return 1;
        }
        log("work dir %s; %d clusters x %d services x %d endpoints = %,d endpoints", work, clusters, services, endpoints,
                (long) clusters * services * endpoints);
        startNats();
        for (int i = 0; i < clusters; i++) {
            writeRegistry(i, -1);
        }
        for (int i = 0; i < clusters; i++) {
            startController(i, jar);
        }
        for (int i = 0; i < clusters; i++) {
            final int c = i;
            await("controller " + name(i) + " ready with its registry", Duration.ofSeconds(180), () -> {
                var res = get("http://127.0.0.1:" + httpPort(c) + "/api/v1/services/bench/svc-0");
                return res != null && res.statusCode() == 200;
            });
        }
        log("all %d controllers ready, each with its own registry", clusters);

        for (int i = 1; i < clusters - 1; i++) {
            var token = api(0).post("/api/v1/join-tokens", "{\"cluster\":\"" + name(i) + "\"}").path("token").asText();
            api(i).post("/api/v1/federation/join", "{\"token\":" + ControllerClient.quote(token) + "}");
        }
        for (int i = 0; i < clusters - 1; i++) {
            final int c = i;
            await(name(i) + " Active with every member", Duration.ofSeconds(300), () -> activeWithAll(c, clusters - 1));
        }
        log("federation of %d formed and synced; letting it settle for 15 s (first writes of peers' registries to disk)", clusters - 1);
        Thread.sleep(15_000);

        int newcomer = clusters - 1;
        var token = api(0).post("/api/v1/join-tokens", "{\"cluster\":\"" + name(newcomer) + "\"}").path("token").asText();
        long bytesBefore = natsOutBytes(name(newcomer));
        long t0 = System.nanoTime();
        api(newcomer).post("/api/v1/federation/join", "{\"token\":" + ControllerClient.quote(token) + "}");
        long joinAnswered = System.nanoTime();
        await(name(newcomer) + " Active", Duration.ofSeconds(120),
                () -> "Active".equals(api(newcomer).get("/api/v1/federation").path("state").asText()));
        long t1 = System.nanoTime();
        long bytesAfter = natsOutBytes(name(newcomer));
        double syncSeconds = metric(newcomer, "isthmus_federation_sync_duration_seconds_max");
        long held = catalogSize(newcomer);
        long expected = (long) clusters * services * endpoints;
        log("%s joined: Active %.0f ms after the join request (answer in %.0f ms); catalog %,d of %,d endpoints", name(newcomer),
                (t1 - t0) / 1e6, (joinAnswered - t0) / 1e6, held, expected);
        long heapNew = heapAfterGc(newcomer);
        long heapOld = heapAfterGc(0);

        for (int i = 0; i < clusters; i++) {
            final int c = i;
            await(name(i) + " Active with every member", Duration.ofSeconds(60), () -> activeWithAll(c, clusters));
        }
        log("%d single-endpoint changes in %s's registry", changes, name(0));
        for (int k = 0; k < changes; k++) {
            writeRegistry(0, 20000 + k);
            Thread.sleep(1100); // the static file is polled once a second
        }
        Thread.sleep(1500);
        var p50s = new ArrayList<Double>();
        var p99s = new ArrayList<Double>();
        double max = 0;
        long counted = 0;
        for (int i = 1; i < clusters; i++) {
            var m = metrics(i);
            p50s.add(m.getOrDefault("isthmus_federation_propagation_seconds{quantile=\"0.5\"}", Double.NaN));
            p99s.add(m.getOrDefault("isthmus_federation_propagation_seconds{quantile=\"0.99\"}", Double.NaN));
            max = Math.max(max, m.getOrDefault("isthmus_federation_propagation_seconds_max", 0.0));
            counted += m.getOrDefault("isthmus_federation_propagation_seconds_count", 0.0).longValue();
        }
        p50s.sort(Double::compare);
        double p50 = p50s.get(p50s.size() / 2);
        double p99 = p99s.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN);

        var report = new StringBuilder();
        report.append(String.format(Locale.ROOT, """
                ## Controller scale (issue 3), %s

                %d clusters x %d services x %d endpoints (%,d endpoints), one nats-server (max_payload 128 KiB),
                %d controller JVMs (-Xmx1g -XX:+UseSerialGC) on this machine (%d CPUs).

                | measure | result | target |
                | --- | --- | --- |
                | new controller: join request to full catalog held (state Active) | %.0f ms | < 2000 ms |
                | its own sync (sync request to every member's registry, controller metric) | %.0f ms | |
                | catalog held by the new controller | %,d of %,d endpoints | all |
                | NATS bytes sent to the new controller during its join and sync | %,d (%.1f MiB) | |
                | heap of the new controller after a full GC | %.0f MiB | < 512 MiB |
                | heap of a long-running member after a full GC | %.0f MiB | < 512 MiB |
                | single endpoint change, propagation p50 (median over %d controllers) | %.1f ms | |
                | single endpoint change, propagation p99 (worst controller) | %.1f ms | < 100 ms |
                | single endpoint change, slowest seen | %.1f ms | |
                | deltas applied / expected | %,d / %,d | |
                """, Instant.now().toString().substring(0, 16), clusters, services, endpoints, expected, clusters,
                Runtime.getRuntime().availableProcessors(), (t1 - t0) / 1e6, syncSeconds * 1000, held, expected,
                bytesAfter - bytesBefore, (bytesAfter - bytesBefore) / 1048576.0, heapNew / 1048576.0, heapOld / 1048576.0,
                clusters - 1, p50 * 1000, p99 * 1000, max * 1000, counted, (long) changes * (clusters - 1)));
        System.out.println();
        System.out.println(report);
        Path out = home().resolve("bench/target/federation-scale.md");
        Files.writeString(out, report.toString());
        log("report written to %s (copy it into docs/benchmarks.md)", out);
        return 0;
    }

    private boolean activeWithAll(int i, int members) throws Exception {
        JsonNode view = api(i).get("/api/v1/federation");
        if (!"Active".equals(view.path("state").asText())) {
            return false;
        }
        int active = 0;
        for (JsonNode p : view.path("peers")) {
            if ("Active".equals(p.path("state").asText()) && p.path("generationLag").asLong() == 0) {
                active++;
            }
        }
        return active == members - 1;
    }

    private long catalogSize(int i) throws Exception {
        var res = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort(i) + "/api/v1/services"))
                .timeout(Duration.ofSeconds(120)).build(), HttpResponse.BodyHandlers.ofInputStream());
        long n = 0;
        try (var in = res.body()) {
            for (JsonNode s : JSON.readTree(in)) {
                for (JsonNode list : s.path("clusters")) {
                    n += list.size();
                }
            }
        }
        return n;
    }

    private long heapAfterGc(int i) throws Exception {
        long pid = processes.get(1 + i).pid();
        String jcmd = Path.of(BenchFederation.java()).resolveSibling("jcmd").toString();
        new ProcessBuilder(jcmd, Long.toString(pid), "GC.run").redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD).start().waitFor();
        Thread.sleep(300);
        double sum = 0;
        for (var e : metrics(i).entrySet()) {
            if (e.getKey().startsWith("jvm_memory_used_bytes{") && e.getKey().contains("area=\"heap\"")) {
                sum += e.getValue();
            }
        }
        return (long) sum;
    }

    private Map<String, Double> metrics(int i) throws Exception {
        var res = get("http://127.0.0.1:" + httpPort(i) + "/q/metrics");
        var out = new LinkedHashMap<String, Double>();
        if (res == null) {
            return out;
        }
        for (String line : res.body().split("\n")) {
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int space = line.lastIndexOf(' ');
            try {
                out.put(line.substring(0, space), Double.parseDouble(line.substring(space + 1)));
            } catch (NumberFormatException e) {
                // not a sample
            }
        }
        return out;
    }

    private double metric(int i, String name) throws Exception {
        return metrics(i).getOrDefault(name, Double.NaN);
    }

    private long natsOutBytes(String cluster) throws Exception {
        var res = get("http://127.0.0.1:" + (basePort + 1) + "/connz?limit=1024");
        for (JsonNode c : JSON.readTree(res.body()).path("connections")) {
            if (("isthmus-controller-" + cluster).equals(c.path("name").asText())) {
                return c.path("out_bytes").asLong();
            }
        }
        throw new IllegalStateException("no NATS connection named isthmus-controller-" + cluster);
    }

    private static HttpResponse<String> get(String url) {
        try {
            return HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30)).build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    interface Check {
        boolean holds() throws Exception;
    }

    private void await(String what, Duration timeout, Check check) throws Exception {
        Instant deadline = Instant.now().plus(timeout);
        Exception last = null;
        while (Instant.now().isBefore(deadline)) {
            try {
                if (check.holds()) {
                    return;
                }
            } catch (Exception e) {
                last = e;
            }
            for (Process p : processes) {
                if (!p.isAlive()) {
                    throw new IllegalStateException("a process died (exit " + p.exitValue() + ") while waiting for " + what + "; logs in " + work);
                }
            }
            Thread.sleep(10);
        }
        throw new IllegalStateException(what + " did not happen within " + timeout.toSeconds() + " s"
                + (last != null ? " (last error: " + last.getMessage() + ")" : "") + "; logs in " + work);
    }

    private void startNats() throws Exception {
        Path conf = work.resolve("nats.conf");
        Files.writeString(conf, "host: 127.0.0.1\nport: " + basePort + "\nhttp: \"127.0.0.1:" + (basePort + 1) + "\"\nmax_payload: 131072\n");
        var pb = new ProcessBuilder("nats-server", "-c", conf.toString()).redirectErrorStream(true)
                .redirectOutput(work.resolve("nats.log").toFile());
        processes.add(pb.start());
        await("nats-server", Duration.ofSeconds(20), () -> {
            var r = get("http://127.0.0.1:" + (basePort + 1) + "/healthz");
            return r != null && r.statusCode() == 200;
        });
    }

    private void startController(int i, Path jar) throws IOException {
        Path dir = Files.createDirectories(work.resolve(name(i)));
        var pb = new ProcessBuilder(BenchFederation.java(), "-Xmx1g", "-XX:+UseSerialGC", "-jar", jar.toString())
                .directory(dir.toFile()).redirectErrorStream(true).redirectOutput(dir.resolve("process.log").toFile());
        var env = pb.environment();
        env.put("QUARKUS_HTTP_PORT", Integer.toString(httpPort(i)));
        env.put("QUARKUS_HTTP_HOST", "127.0.0.1");
        env.put("ISTHMUS_FEDERATION", "bench");
        env.put("ISTHMUS_CLUSTER_NAME", name(i));
        env.put("ISTHMUS_NATS_URL", "nats://127.0.0.1:" + basePort);
        env.put("ISTHMUS_STATE_DIR", dir.resolve("state").toString());
        env.put("ISTHMUS_ADMIN_TOKEN", ADMIN);
        env.put("ISTHMUS_WORKLOAD_TOKEN", ADMIN + "-workload");
        env.put("ISTHMUS_REGISTRY_STATIC_FILE", registryFile(i).toString());
        env.put("ISTHMUS_REGISTRY_STATIC_FILE_POLL", "1s");
        env.put("ISTHMUS_MEMBERSHIP_SYNC_TIMEOUT", "120s");
        processes.add(pb.start());
    }

    private Path registryFile(int i) {
        return work.resolve(name(i) + "-endpoints.json");
    }

    /** Writes cluster i's static registry; {@code changedPort} > 0 changes the first endpoint's port. */
    private void writeRegistry(int i, int changedPort) throws IOException {
        var sb = new StringBuilder(services * endpoints * 120).append("{\"endpoints\":[\n");
        for (int s = 0; s < services; s++) {
            for (int e = 0; e < endpoints; e++) {
                if (s + e > 0) {
                    sb.append(",\n");
                }
                int port = s == 0 && e == 0 && changedPort > 0 ? changedPort : 8080;
                sb.append("{\"service\":\"bench/svc-").append(s).append("\",\"instance\":\"").append(name(i)).append("-svc-").append(s)
                        .append('-').append(e).append("\",\"address\":\"10.").append(i).append('.').append(s / 256).append('.')
                        .append((s % 256 + e) % 256).append("\",\"port\":").append(port).append(",\"labels\":{\"version\":\"v")
                        .append(1 + e % 2).append("\"}}");
            }
        }
        sb.append("\n]}\n");
        Path tmp = registryFile(i).resolveSibling(name(i) + ".tmp");
        Files.writeString(tmp, sb, StandardCharsets.UTF_8);
        Files.move(tmp, registryFile(i), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    private void stopAll() {
        dev.isthmus.cli.local.Processes.stop(processes.stream().map(Process::toHandle).toList(), java.time.Duration.ofSeconds(10));
        processes.clear();
    }
}
