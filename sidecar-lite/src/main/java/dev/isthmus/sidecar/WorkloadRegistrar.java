package dev.isthmus.sidecar;

import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Registers the sidecar's workload with its cluster's controller and keeps the registration alive:
 * the registration is re-sent every interval (the heartbeat), with the app's current health. On
 * shutdown the instance is deregistered. A controller that is away is retried at the next beat;
 * only changes of outcome are logged.
 *
 * <p>It speaks through {@link HttpURLConnection}, not the JDK's {@code java.net.http} client: that
 * client loaded about 250 classes of its own and kept a selector thread, in every sidecar, for one
 * request every few seconds.
 */
final class WorkloadRegistrar implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(WorkloadRegistrar.class);

    private final URI workloads;
    private final String instance;
    private final String body;
    private final BooleanSupplier healthy;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("registrar").unstarted(r));
    private volatile String lastOutcome = "";
    private final java.util.function.Supplier<String> credential;
    /** The workload's SPIFFE ID once it holds its SVID (empty before): callers' sidecars expect it of this endpoint. */
    private final java.util.function.Supplier<String> identity;

    /**
     * @param credential the controller's workload credential, read at every beat (so a credential file
     *     written after the sidecar started is picked up); null or empty when there is none
     */
    WorkloadRegistrar(URI controller, String service, String instance, String address, int port, String protocol,
            java.util.Map<String, String> labels, BooleanSupplier healthy, java.util.function.Supplier<String> credential,
            java.util.function.Supplier<String> identity) {
        this.identity = identity;
        this.workloads = controller.resolve("/api/v1/workloads");
        this.credential = credential;
        this.instance = instance;
        this.healthy = healthy;
        var labelsJson = new StringBuilder();
        new java.util.TreeMap<>(labels).forEach((k, v) -> labelsJson.append(labelsJson.isEmpty() ? "" : ",").append(quote(k)).append(':').append(quote(v)));
        this.body = "{\"service\":%s,\"instance\":%s,\"address\":%s,\"port\":%d,\"protocol\":%s,\"labels\":{%s},\"healthy\":"
                .formatted(quote(service), quote(instance), quote(address), port, quote(protocol), labelsJson);
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    void start(Duration interval) {
        timer.scheduleWithFixedDelay(this::beat, 0, interval.toMillis(), TimeUnit.MILLISECONDS);
    }

    private void beat() {
        String outcome;
        try {
            var answer = new StringBuilder();
            int status = send("POST", workloads, body + healthy.getAsBoolean() + ",\"identity\":\"" + identity.get() + "\"}", answer);
            outcome = status < 300 ? "registered" : "refused status=" + status + " body=" + answer;
        } catch (Exception e) {
            outcome = "controller_unreachable cause=" + e.getClass().getSimpleName();
        }
        if (!outcome.equals(lastOutcome)) {
            lastOutcome = outcome;
            log.info("event=registration instance={} controller={} outcome={}", instance, workloads, outcome);
        }
    }

    /**
     * One request to the controller (1 s to connect, 2 s for each read), with the credential when
     * there is one; its status, and its answer's body in {@code answer}. Redirects are not followed.
     */
    private int send(String method, URI uri, String json, StringBuilder answer) throws IOException {
        var c = (HttpURLConnection) uri.toURL().openConnection();
        c.setConnectTimeout(1000);
        c.setReadTimeout(2000);
        c.setInstanceFollowRedirects(false);
        c.setRequestMethod(method);
        String token = credential.get();
        if (token != null && !token.isBlank()) {
            c.setRequestProperty("authorization", "Bearer " + token.strip());
        }
        if (json != null) {
            byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
            c.setDoOutput(true);
            c.setFixedLengthStreamingMode(bytes.length);
            c.setRequestProperty("content-type", "application/json");
            try (var out = c.getOutputStream()) {
                out.write(bytes);
            }
        }
        int status = c.getResponseCode();
        try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
            if (in != null) {
                answer.append(new String(in.readAllBytes(), StandardCharsets.UTF_8)); // read whole, so the connection is kept alive
            }
        }
        return status;
    }

    @Override
    public void close() {
        timer.shutdownNow();
        try {
            int status = send("DELETE", URI.create(workloads + "/" + instance), null, new StringBuilder());
            log.info("event=deregistered instance={} status={}", instance, status);
        } catch (Exception e) {
            log.warn("event=deregister_failed instance={} cause={}", instance, e.toString());
        } 
    }
}
