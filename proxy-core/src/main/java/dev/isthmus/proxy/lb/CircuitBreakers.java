package dev.isthmus.proxy.lb;

import dev.isthmus.proxy.config.xds.ProxyConfig;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One cluster's circuit breakers, shared by every listener that uses the cluster and kept across
 * config updates (new limits apply to the counts as they stand). Each {@code try...} either takes a
 * slot and returns null, or returns the name of the breaker that is open ({@code max_connections},
 * {@code max_requests}, {@code max_retries}, {@code retry_budget}); a taken slot is given back with
 * the matching {@code end...}.
 */
public final class CircuitBreakers {

    private volatile ProxyConfig.Limits limits;
    private final AtomicInteger connections = new AtomicInteger();
    private final AtomicInteger requests = new AtomicInteger();
    private final AtomicInteger retries = new AtomicInteger();

    public CircuitBreakers(ProxyConfig.Limits limits) {
        this.limits = limits;
    }

    public void update(ProxyConfig.Limits next) {
        this.limits = next;
    }

    private static String take(AtomicInteger counter, int max, String name) {
        while (true) {
            int now = counter.get();
            if (now >= max) {
                return name;
            }
            if (counter.compareAndSet(now, now + 1)) {
                return null;
            }
        }
    }

    public String tryConnection() {
        return take(connections, limits.maxConnections(), "max_connections");
    }

    public void endConnection() {
        connections.decrementAndGet();
    }

    public String tryRequest() {
        return take(requests, limits.maxRequests(), "max_requests");
    }

    public void endRequest() {
        requests.decrementAndGet();
    }

    /**
     * A retry: within the retry budget if there is one, else under {@code max_retries}. As in Envoy, a
     * retry budget overrides the retry circuit breaker (applying both capped retries at 3 in flight
     * whatever the budget said).
     */
    public String tryRetry() {
        var l = limits;
        if (l.retryBudgetPercent() >= 0) {
            int budget = Math.max(l.minRetryConcurrency(), (int) Math.floor(requests.get() * l.retryBudgetPercent() / 100.0));
            return take(retries, budget, "retry_budget");
        }
        return take(retries, l.maxRetries(), "max_retries");
    }

    public void endRetry() {
        retries.decrementAndGet();
    }

    public int connections() {
        return connections.get();
    }

    public int requests() {
        return requests.get();
    }

    public int retries() {
        return retries.get();
    }
}
