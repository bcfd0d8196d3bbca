package dev.isthmus.cli.local;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * Steady traffic through the shop: GET requests at a fixed rate (open loop: a slow answer does not
 * delay the next request) to order-processing's {@code /orders/checkout} in chosen regions, which
 * calls product-catalog through its sidecar. Each answer names the region whose catalogue served it
 * ({@code upstreamBody.region}), so where traffic goes can be read per second. An answer other than
 * 200 with an upstream 200 (gRPC: status OK), or no answer within the timeout, is a failed request.
 *
 * <p>Used by {@code isthmus load}, the failover e2e test and the failover benchmark.
 */
public final class ShopLoad implements AutoCloseable {

    private static final Pattern SERVED_BY = Pattern.compile("\"upstreamBody\":\\{[^{}]*?\"region\":\"([^\"]+)\"");

    /** One request: when it was sent (nanoTime), how long it took, its status, the catalogue's region, or what failed. */
    public record Sample(long sentAt, long latencyNanos, int status, String servedBy, String error) {
        public boolean failed() {
            return error != null;
        }
    }

    /** What a span of samples shows. */
    public record Window(int requests, Map<String, Integer> byRegion, int failed, double p50Millis, double p99Millis) {
        /** The share of the successful requests served by {@code region}. */
        public double share(String region) {
            int ok = requests - failed;
            return ok == 0 ? 0 : byRegion.getOrDefault(region, 0) / (double) ok;
        }
    }

    private final List<URI> targets;
    private final int rate;
    private final Duration timeout;
    private final HttpClient http;
    private final ScheduledExecutorService ticker = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("shop-load").unstarted(r));
    private final ConcurrentLinkedQueue<Sample> samples = new ConcurrentLinkedQueue<>();
    private final java.util.concurrent.atomic.AtomicLong answered = new java.util.concurrent.atomic.AtomicLong();
    private long started;
    private volatile long sent;

    /**
     * @param targets order-processing URLs ({@code http://host:port}); requests go round robin
     * @param rate requests per second, all targets together
     */
    public ShopLoad(List<URI> targets, int rate, Duration timeout) {
        if (targets.isEmpty() || rate < 1 || rate > 5000) {
            throw new IllegalArgumentException("load needs at least one target and a rate of 1-5000 requests/s, got " + targets.size() + " targets at "
                    + rate + "/s");
        }
        this.targets = List.copyOf(targets);
        this.rate = rate;
        this.timeout = timeout;
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2))
                .executor(Executors.newVirtualThreadPerTaskExecutor()).build();
    }

    /** The shop's checkout URLs of order-processing in {@code regions} of a local federation. */
    public static List<URI> checkoutTargets(Topology topology, List<String> regions) {
        return checkoutTargets(topology, regions, false);
    }

    /** @param grpc order-processing calls the catalogue over gRPC ({@code ?catalog=grpc}) rather than HTTP/1.1 */
    public static List<URI> checkoutTargets(Topology topology, List<String> regions, boolean grpc) {
        var out = new ArrayList<URI>();
        for (String region : regions) {
            if (!topology.regions().contains(region)) {
                throw new IllegalArgumentException("no region '" + region + "' in the local federation; it has " + topology.regions());
            }
            if (!topology.runs(region, "order-processing")) {
                throw new IllegalArgumentException("order-processing does not run in " + region);
            }
            out.add(URI.create("http://" + Topology.HOST + ":" + topology.appPort(region, "order-processing") + "/orders/checkout"
                    + (grpc ? "?catalog=grpc" : "")));
        }
        return out;
    }

    public synchronized void start() {
        started = System.nanoTime();
        ticker.scheduleAtFixedRate(this::tick, 0, 1, TimeUnit.MILLISECONDS);
    }

    /** Sends the requests due by now (keeps the rate even when a tick comes late). */
    private void tick() {
        long due = (System.nanoTime() - started) * rate / 1_000_000_000L + 1;
        while (sent < due) {
            URI target = targets.get((int) (sent % targets.size()));
            sent++;
            long at = System.nanoTime();
            http.sendAsync(HttpRequest.newBuilder(target).timeout(timeout).build(), HttpResponse.BodyHandlers.ofString())
                    .whenComplete((res, error) -> {
                        samples.add(sample(at, res, error));
                        answered.incrementAndGet();
                    });
        }
    }

    private static Sample sample(long at, HttpResponse<String> res, Throwable error) {
        long latency = System.nanoTime() - at;
        if (error != null) {
            return new Sample(at, latency, 0, "", String.valueOf(error.getCause() != null ? error.getCause() : error));
        }
        var m = SERVED_BY.matcher(res.body());
        String region = m.find() ? m.group(1) : "";
        boolean ok = res.statusCode() == 200 && (res.body().contains("\"upstreamStatus\":200") || res.body().contains("\"upstreamStatus\":\"OK\""))
                && !region.isEmpty();
        return new Sample(at, latency, res.statusCode(), region, ok ? null : "status " + res.statusCode() + ": "
                + res.body().substring(0, Math.min(1000, res.body().length()))); // enough for a gRPC status with its description and cause
    }

    /** The samples answered so far, in no particular order. */
    public List<Sample> samples() {
        return new ArrayList<>(samples);
    }

    /**
     * Takes out the samples answered so far that were sent before {@code before} (nanoTime): a long
     * run keeps only what it has not reported yet, not every sample since the start.
     */
    public List<Sample> drainSentBefore(long before) {
        var out = new ArrayList<Sample>();
        for (var it = samples.iterator(); it.hasNext(); ) {
            Sample s = it.next();
            if (s.sentAt() < before) {
                out.add(s);
                it.remove();
            }
        }
        return out;
    }

    /**
     * Totals over any number of samples in constant memory: counts, and latencies in buckets 1% wide
     * (so percentiles are within 1%).
     */
    public static final class Totals {
        private static final double STEP = Math.log(1.01);
        private final TreeMap<String, Integer> byRegion = new TreeMap<>();
        private final TreeMap<Integer, Long> buckets = new TreeMap<>();
        private int requests;
        private int failed;

        public void add(Sample s) {
            requests++;
            if (s.failed()) {
                failed++;
            } else {
                byRegion.merge(s.servedBy(), 1, Integer::sum);
            }
            buckets.merge(bucket(s.latencyNanos()), 1L, Long::sum);
        }

        public void addAll(List<Sample> samples) {
            samples.forEach(this::add);
        }

        private static int bucket(long nanos) {
            return nanos <= 1000 ? 0 : (int) Math.ceil(Math.log(nanos / 1000.0) / STEP);
        }

        /** The upper bound of the bucket that holds the p-th percentile, in ms. */
        double percentile(int p) {
            if (requests == 0) {
                return 0;
            }
            long rank = Math.max(1, (long) Math.ceil(p / 100.0 * requests));
            long seen = 0;
            for (var e : buckets.entrySet()) {
                seen += e.getValue();
                if (seen >= rank) {
                    return Math.exp(e.getKey() * STEP) / 1000.0;
                }
            }
            return Math.exp(buckets.lastKey() * STEP) / 1000.0;
        }

        public Window window() {
            return new Window(requests, new TreeMap<>(byRegion), failed, percentile(50), percentile(99));
        }
    }

    /** When the load started (nanoTime). */
    public synchronized long startedAt() {
        return started;
    }

    /** The samples sent in {@code [from, to)} (nanoTime). */
    public static Window window(List<Sample> samples, long from, long to) {
        var byRegion = new TreeMap<String, Integer>();
        var latencies = new ArrayList<Long>();
        int requests = 0;
        int failed = 0;
        for (Sample s : samples) {
            if (s.sentAt() < from || s.sentAt() >= to) {
                continue;
            }
            requests++;
            latencies.add(s.latencyNanos());
            if (s.failed()) {
                failed++;
            } else {
                byRegion.merge(s.servedBy(), 1, Integer::sum);
            }
        }
        latencies.sort(Long::compare);
        return new Window(requests, byRegion, failed, percentile(latencies, 50), percentile(latencies, 99));
    }

    static double percentile(List<Long> sorted, int p) {
        if (sorted.isEmpty()) {
            return 0;
        }
        int i = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i))) / 1e6;
    }

    /** Stops sending and waits up to the timeout for the answers in flight. */
    @Override
    public void close() {
        ticker.shutdownNow();
        long deadline = System.nanoTime() + timeout.toNanos() + TimeUnit.SECONDS.toNanos(1);
        long expected;
        synchronized (this) {
            expected = sent;
        }
        while (answered.get() < expected && System.nanoTime() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        http.close();
    }
}
