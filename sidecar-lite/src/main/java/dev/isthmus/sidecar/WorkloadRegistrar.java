package dev.isthmus.sidecar;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
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
 */
final class WorkloadRegistrar implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(WorkloadRegistrar.class);

    private final URI workloads;
    private final String instance;
    private final String body;
    private final BooleanSupplier healthy;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(1)).build();
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
            var res = http.send(authorized(HttpRequest.newBuilder(workloads)).timeout(Duration.ofSeconds(2))
                    .header("content-type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body + healthy.getAsBoolean() + ",\"identity\":\"" + identity.get() + "\"}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            outcome = res.statusCode() < 300 ? "registered" : "refused status=" + res.statusCode() + " body=" + res.body();
        } catch (Exception e) {
            outcome = "controller_unreachable cause=" + e.getClass().getSimpleName();
        }
        if (!outcome.equals(lastOutcome)) {
            lastOutcome = outcome;
            log.info("event=registration instance={} controller={} outcome={}", instance, workloads, outcome);
        }
    }

    private HttpRequest.Builder authorized(HttpRequest.Builder b) {
        String c = credential.get();
        return c == null || c.isBlank() ? b : b.header("authorization", "Bearer " + c.strip());
    }

    @Override
    public void close() {
        timer.shutdownNow();
        try {
            http.send(authorized(HttpRequest.newBuilder(URI.create(workloads + "/" + instance))).timeout(Duration.ofSeconds(2)).DELETE().build(),
                    HttpResponse.BodyHandlers.discarding());
            log.info("event=deregistered instance={}", instance);
        } catch (Exception e) {
            log.warn("event=deregister_failed instance={} cause={}", instance, e.toString());
        } 
    }
}
