package dev.isthmus.proxy.lb;

import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.proxy.tcp.UpstreamSelector;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.random.RandomGenerator;

/**
 * Picks an endpoint of one cluster for each new connection.
 *
 * <ul>
 *   <li><b>Priority</b> (Envoy's rule): level 0 takes {@code min(100, healthy% x overprovisioning)}
 *       percent of the load, the rest spills to level 1, and so on; when every level is short, the
 *       loads are scaled up to 100%. So with the default factor 1.4 a level keeps all its traffic
 *       until fewer than 72% of its endpoints are healthy.</li>
 *   <li><b>Within a level</b>: smooth weighted round robin (the endpoints' load-balancing weights),
 *       or least-request as power of two choices (two random endpoints, the one with fewer active
 *       connections).</li>
 *   <li><b>Health</b>: an endpoint the assignment marks unhealthy is not used; one with
 *       {@code consecutiveFailures} connect failures in a row is ejected for {@code ejection} (the
 *       outlier detection of issue 5 in its layer-4 form), and comes back after it; a refused
 *       connection ({@link #refused}) ejects it at once.</li>
 *   <li><b>Retries</b>: {@link #pick} skips endpoints already tried for the connection, taking the
 *       next level or locality when the chosen one has none left.</li>
 * </ul>
 */
public final class ClusterLoadBalancer implements UpstreamSelector {

    private final ProxyConfig.ClusterSpec spec;
    private final RandomGenerator random;
    private final Clock clock;
    private final int consecutiveFailures;
    private final Duration ejection;
    private final TreeMap<Integer, List<Slot>> levels = new TreeMap<>();
    private final Map<InetSocketAddress, Slot> byAddress = new HashMap<>();

    private static final class Slot {
        final ProxyConfig.EndpointSpec endpoint;
        int active;
        int failures;
        Instant ejectedUntil = Instant.MIN;
        /** The ejection multiplier: up by one at each ejection, down by one for each outlier interval back in service since {@link #decayFrom}. */
        int ejections;
        Instant decayFrom = Instant.MIN;
        long currentWeight;

        Slot(ProxyConfig.EndpointSpec endpoint) {
            this.endpoint = endpoint;
        }
    }

    public ClusterLoadBalancer(ProxyConfig.ClusterSpec spec) {
        this(spec, RandomGenerator.getDefault(), Clock.systemUTC(), spec.outlier().consecutiveFailures(), spec.outlier().baseEjection());
    }

    public ClusterLoadBalancer(ProxyConfig.ClusterSpec spec, RandomGenerator random, Clock clock, int consecutiveFailures, Duration ejection) {
        this.spec = spec;
        this.random = random;
        this.clock = clock;
        this.consecutiveFailures = consecutiveFailures;
        this.ejection = ejection;
        for (var e : spec.endpoints()) {
            var slot = new Slot(e);
            levels.computeIfAbsent(e.priority(), p -> new ArrayList<>()).add(slot);
            byAddress.put(e.address(), slot);
        }
    }

    public ProxyConfig.ClusterSpec spec() {
        return spec;
    }

    @Override
    public String dropped() {
        var drops = spec.drops();
        if (drops.isEmpty()) {
            return null;
        }
        for (var d : drops) {
            if (d.fraction() >= 1.0 || d.fraction() > 0 && java.util.concurrent.ThreadLocalRandom.current().nextDouble() < d.fraction()) {
                return d.category();
            }
        }
        return null;
    }

    /**
     * The load balancer of the cluster's new spec, keeping what this one knows of the endpoints that
     * stay (by address): requests in flight, consecutive failures, ejections and their end, as Envoy
     * keeps its per-host state across an update. A change of weights, priorities or other endpoints
     * thus does not bring an ejected endpoint back early, nor forget the load on the others.
     */
    public synchronized ClusterLoadBalancer next(ProxyConfig.ClusterSpec nextSpec) {
        var next = new ClusterLoadBalancer(nextSpec, random, clock, nextSpec.outlier().consecutiveFailures(), nextSpec.outlier().baseEjection());
        next.carryOver(byAddress);
        return next;
    }

    private synchronized void carryOver(Map<InetSocketAddress, Slot> before) {
        before.forEach((address, old) -> {
            Slot now = byAddress.get(address);
            if (now != null) {
                now.active = old.active;
                now.failures = old.failures;
                now.ejectedUntil = old.ejectedUntil;
                now.ejections = old.ejections;
                now.decayFrom = old.decayFrom;
            }
        });
    }

    private boolean usable(Slot s, Instant now) {
        return s.endpoint.healthy() && !now.isBefore(s.ejectedUntil);
    }

    /** The share of new connections each priority level takes now, in percent (levels in order). */
    public synchronized Map<Integer, Double> priorityLoad() {
        Instant now = clock.instant();
        var load = new TreeMap<Integer, Double>();
        double left = 100;
        for (var level : levels.entrySet()) {
            long healthy = level.getValue().stream().filter(s -> usable(s, now)).count();
            double healthPct = 100.0 * healthy / level.getValue().size();
            double take = Math.min(left, healthPct * spec.overprovisioningFactor() / 100.0);
            load.put(level.getKey(), take);
            left -= take;
        }
        double total = 100 - left;
        if (total > 0 && total < 100) {
            load.replaceAll((p, v) -> v * 100 / total);
        }
        return load;
    }

    @Override
    public synchronized Optional<InetSocketAddress> pick(Set<InetSocketAddress> tried) {
        Instant now = clock.instant();
        if (levels.size() == 1) { // the common case: no priority levels to weigh on every pick
            var candidates = candidates(levels.firstEntry().getValue(), now, tried);
            return candidates.isEmpty() ? panic(tried) : Optional.of(choose(candidates).endpoint.address());
        }
        var load = priorityLoad();
        double draw = random.nextDouble() * 100;
        Integer chosen = null;
        for (var e : load.entrySet()) {
            if (draw < e.getValue()) {
                chosen = e.getKey();
                break;
            }
            draw -= e.getValue();
        }
        var order = new ArrayList<Integer>();
        if (chosen != null) {
            order.add(chosen);
        }
        for (Integer p : levels.keySet()) {
            if (!p.equals(chosen)) {
                order.add(p);
            }
        }
        for (Integer p : order) {
            var candidates = candidates(levels.get(p), now, tried);
            if (!candidates.isEmpty()) {
                return Optional.of(choose(candidates).endpoint.address());
            }
        }
        return panic(tried);
    }

    /**
     * The endpoints of {@code level} that are usable and not yet tried, in order. Called on every new
     * stream, so without a stream pipeline, and the level itself (no copy) when all of it qualifies,
     * as it does but for ejections and retries.
     */
    private List<Slot> candidates(List<Slot> level, Instant now, Set<InetSocketAddress> tried) {
        int n = level.size();
        int i = 0;
        while (i < n && usable(level.get(i), now) && !tried.contains(level.get(i).endpoint.address())) {
            i++;
        }
        if (i == n) {
            return level;
        }
        var out = new ArrayList<Slot>(n - 1);
        for (int j = 0; j < n; j++) {
            Slot s = level.get(j);
            if (j < i || (j > i && usable(s, now) && !tried.contains(s.endpoint.address()))) {
                out.add(s);
            }
        }
        return out;
    }

    /**
     * Nothing usable is left untried: rather than fail the request, an ejected endpoint (one the
     * assignment still calls healthy) is tried, the one whose ejection ends first, in priority order,
     * as Envoy's panic routing ignores outlier ejections when too few endpoints are left. Without it,
     * an ejected region that recovered stayed unused while the only other one refused connections,
     * and every request failed until the ejection ended.
     */
    private Optional<InetSocketAddress> panic(Set<InetSocketAddress> tried) {
        Slot best = null;
        for (var level : levels.values()) {
            for (Slot s : level) {
                if (s.endpoint.healthy() && !tried.contains(s.endpoint.address()) && (best == null || s.ejectedUntil.isBefore(best.ejectedUntil))) {
                    best = s;
                }
            }
            if (best != null) {
                break;
            }
        }
        return best == null ? Optional.empty() : Optional.of(best.endpoint.address());
    }

    private Slot choose(List<Slot> candidates) {
        if (candidates.size() == 1) {
            return candidates.get(0);
        }
        if (spec.lbPolicy() == ProxyConfig.LbPolicy.LEAST_REQUEST) {
            Slot a = candidates.get(random.nextInt(candidates.size()));
            Slot b;
            do {
                b = candidates.get(random.nextInt(candidates.size()));
            } while (b == a);
            return b.active < a.active ? b : a;
        }
        long total = 0;
        Slot best = null;
        for (Slot s : candidates) {
            s.currentWeight += s.endpoint.weight();
            total += s.endpoint.weight();
            if (best == null || s.currentWeight > best.currentWeight) {
                best = s;
            }
        }
        best.currentWeight -= total;
        return best;
    }

    @Override
    public synchronized void connected(InetSocketAddress address) {
        Slot s = byAddress.get(address);
        if (s != null) {
            s.active++;
        }
    }

    @Override
    public synchronized void succeeded(InetSocketAddress address) {
        Slot s = byAddress.get(address);
        if (s != null) {
            s.failures = 0;
        }
    }

    @Override
    public synchronized void released(InetSocketAddress address) {
        Slot s = byAddress.get(address);
        if (s != null && s.active > 0) {
            s.active--;
        }
    }

    @Override
    public synchronized void failed(InetSocketAddress address) {
        Slot s = byAddress.get(address);
        if (s == null || ++s.failures < consecutiveFailures) {
            return;
        }
        eject(s);
    }

    /**
     * Refused or unreachable: nothing listens at the endpoint, so it is ejected at once (as HAProxy's
     * {@code on-error mark-down} does), without waiting for {@code consecutiveFailures}; the maximum
     * ejection percent still applies. When a whole region goes dark, the callers' next requests go
     * to the next locality straight away instead of each failing there first and piling retries up.
     */
    @Override
    public synchronized void refused(InetSocketAddress address) {
        Slot s = byAddress.get(address);
        if (s != null && !clock.instant().isBefore(s.ejectedUntil)) {
            s.failures++;
            eject(s);
        }
    }

    /**
     * Ejects {@code s} for the base time times its multiplier (at most the maximum), unless it is
     * ejected already: failures of requests that were in flight when it was ejected, or that panic
     * routing sent to it, neither lengthen the ejection nor raise the multiplier, as Envoy ignores
     * an ejected host's failures. Before, each such burst counted as a new ejection: three bursts
     * after one outage ejected an endpoint for 90 s instead of 30.
     */
    private void eject(Slot s) {
        Instant now = clock.instant();
        s.failures = 0;
        if (now.isBefore(s.ejectedUntil)) {
            return;
        }
        long ejected = 0;
        for (Slot x : byAddress.values()) {
            if (now.isBefore(x.ejectedUntil)) {
                ejected++;
            }
        }
        long allowed = Math.max(1, byAddress.size() * spec.outlier().maxEjectionPercent() / 100);
        if (ejected >= allowed) {
            return; // too many ejected already: keep it in service
        }
        decay(s, now);
        s.ejections++;
        Duration time = ejection.multipliedBy(s.ejections);
        if (time.compareTo(spec.outlier().maxEjection()) > 0) {
            time = spec.outlier().maxEjection();
        }
        s.ejectedUntil = now.plus(time);
        s.decayFrom = s.ejectedUntil;
    }

    /**
     * Lowers the ejection multiplier by one for each whole outlier interval that {@code s} has spent
     * back in service, as Envoy's interval sweep does for a host that is not ejected. Computed when
     * needed rather than by a timer.
     */
    private void decay(Slot s, Instant now) {
        if (s.ejections == 0 || now.isBefore(s.decayFrom)) {
            return;
        }
        long intervals = Duration.between(s.decayFrom, now).toNanos() / spec.outlier().interval().toNanos();
        long down = Math.min(intervals, s.ejections);
        s.ejections -= (int) down;
        s.decayFrom = s.decayFrom.plus(spec.outlier().interval().multipliedBy(down));
    }

    /** True while {@code address} is ejected after connect failures. */
    public synchronized boolean ejected(InetSocketAddress address) {
        Slot s = byAddress.get(address);
        return s != null && clock.instant().isBefore(s.ejectedUntil);
    }

    @Override
    public String region(InetSocketAddress address) {
        Slot s = byAddress.get(address);
        return s == null ? "" : s.endpoint.locality().region();
    }

    /**
     * Each endpoint as this load balancer sees it now, in priority order, as a JSON array for the
     * admin port's {@code /config_dump} (Envoy's {@code /clusters} in short): address, region,
     * priority, weight, health from the assignment, consecutive failures, the ejection multiplier and
     * the milliseconds left of the current ejection, requests or connections in flight.
     */
    public synchronized String json() {
        Instant now = clock.instant();
        var out = new StringBuilder("[");
        for (var level : levels.values()) {
            for (Slot s : level) {
                decay(s, now);
                if (out.length() > 1) {
                    out.append(',');
                }
                var a = s.endpoint.address();
                out.append("{\"address\":").append(dev.isthmus.proxy.JsonText.quote(a.getHostString() + ":" + a.getPort()))
                        .append(",\"region\":").append(dev.isthmus.proxy.JsonText.quote(s.endpoint.locality().region()))
                        .append(",\"priority\":").append(s.endpoint.priority()).append(",\"weight\":").append(s.endpoint.weight())
                        .append(",\"healthy\":").append(s.endpoint.healthy()).append(",\"consecutive_failures\":").append(s.failures)
                        .append(",\"ejections\":").append(s.ejections).append(",\"ejected_ms\":")
                        .append(now.isBefore(s.ejectedUntil) ? Duration.between(now, s.ejectedUntil).toMillis() : 0)
                        .append(",\"active\":").append(s.active).append('}');
            }
        }
        return out.append(']').toString();
    }

    /** Active connections to {@code address}. */
    public synchronized int active(InetSocketAddress address) {
        Slot s = byAddress.get(address);
        return s == null ? 0 : s.active;
    }
}
