package dev.isthmus.proxy.lb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.proxy.tcp.UpstreamSelector;
import java.net.InetSocketAddress;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class ClusterLoadBalancerTest {

    static InetSocketAddress a(int port) {
        return new InetSocketAddress("127.0.0.1", port);
    }

    static ProxyConfig.EndpointSpec ep(int port, int priority, int weight, boolean healthy) {
        return new ProxyConfig.EndpointSpec(a(port), ProxyConfig.Locality.NONE, priority, weight, healthy);
    }

    static ProxyConfig.ClusterSpec cluster(ProxyConfig.LbPolicy lb, ProxyConfig.EndpointSpec... eps) {
        return new ProxyConfig.ClusterSpec("c", lb, Duration.ofSeconds(1), false, List.of(), Optional.empty(), List.of(eps), 140);
    }

    static Map<Integer, Integer> count(ClusterLoadBalancer lb, int n) {
        var out = new HashMap<Integer, Integer>();
        for (int i = 0; i < n; i++) {
            out.merge(lb.pick(Set.of()).orElseThrow().getPort(), 1, Integer::sum);
        }
        return out;
    }

    @Test
    void weightedRoundRobinFollowsTheWeightsExactly() {
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, true), ep(2, 0, 3, true)));
        assertEquals(Map.of(1, 250, 2, 750), count(lb, 1000));
    }

    @Test
    void leastRequestPrefersTheLessLoadedEndpoint() {
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.LEAST_REQUEST, ep(1, 0, 1, true), ep(2, 0, 1, true)));
        for (int i = 0; i < 5; i++) {
            lb.connected(a(1));
        }
        assertEquals(Map.of(2, 100), count(lb, 100), "with two endpoints, power of two choices always sees both");
    }

    @Test
    void priorityLevelsSpillOverByTheOverprovisioningRule() {
        var eps = new ArrayList<ProxyConfig.EndpointSpec>();
        for (int i = 0; i < 10; i++) {
            eps.add(ep(100 + i, 0, 1, i < 5)); // half of priority 0 healthy
        }
        eps.add(ep(200, 1, 1, true));
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, eps.toArray(ProxyConfig.EndpointSpec[]::new)),
                new SplittableRandom(1), Clock.systemUTC(), 5, Duration.ofSeconds(30));
        assertEquals(Map.of(0, 70.0, 1, 30.0), lb.priorityLoad());
        var seen = count(lb, 10_000);
        int p1 = seen.getOrDefault(200, 0);
        assertTrue(Math.abs(p1 - 3000) < 300, "about 30% to priority 1: " + p1);
        assertTrue(seen.keySet().stream().noneMatch(p -> p >= 105 && p < 110), "unhealthy endpoints get nothing: " + seen);
    }

    @Test
    void everythingGoesToTheNextPriorityWhenTheFirstIsDown() {
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, false), ep(2, 1, 1, true)));
        assertEquals(Map.of(2, 50), count(lb, 50));
    }

    @Test
    void aRetrySkipsTriedEndpointsAndCrossesToTheNextLevel() {
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, true), ep(2, 1, 1, true)));
        assertEquals(a(1), lb.pick(Set.of()).orElseThrow());
        assertEquals(a(2), lb.pick(Set.of(a(1))).orElseThrow(), "the retry goes to the other locality");
        assertTrue(lb.pick(Set.of(a(1), a(2))).isEmpty());
    }

    @Test
    void aRefusedConnectionEjectsAtOnceSoTheNextRequestsGoToTheNextLocality() {
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, true), ep(2, 1, 1, true)),
                new SplittableRandom(1), Clock.systemUTC(), 5, Duration.ofSeconds(30));
        lb.failed(a(1));
        assertEquals(a(1), lb.pick(Set.of()).orElseThrow(), "one ordinary failure of five: still in service");
        lb.refused(a(1));
        assertTrue(lb.ejected(a(1)), "nothing listens there: ejected without waiting for five");
        assertEquals(Map.of(2, 20), count(lb, 20), "the region gone dark gets nothing more");
        assertTrue(UpstreamSelector.definitive(new java.net.ConnectException("Connection refused")));
        assertFalse(UpstreamSelector.definitive(new io.netty.channel.ConnectTimeoutException("connection timed out")), "a timeout may be slowness");
    }

    @Test
    void withEveryOtherEndpointEjectedARetryStillTriesOneRatherThanFail() {
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, true), ep(2, 1, 1, true)),
                new SplittableRandom(1), Clock.systemUTC(), 1, Duration.ofSeconds(30));
        lb.failed(a(2)); // the standby region had a bad moment: ejected
        assertTrue(lb.ejected(a(2)));
        lb.refused(a(1)); // then the first region goes dark; the maximum ejection percent keeps it in service
        assertEquals(a(1), lb.pick(Set.of()).orElseThrow());
        assertEquals(a(2), lb.pick(Set.of(a(1))).orElseThrow(), "panic: the ejected standby is tried rather than nothing");
        assertTrue(lb.pick(Set.of(a(1), a(2))).isEmpty());
    }

    @Test
    void theAdminViewShowsEachEndpointsPriorityHealthAndEjection() {
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN,
                new ProxyConfig.EndpointSpec(a(1), new ProxyConfig.Locality("eu-west", "", ""), 0, 3, true), ep(2, 1, 1, false)),
                new SplittableRandom(1), Clock.systemUTC(), 5, Duration.ofSeconds(30));
        lb.failed(a(1));
        lb.connected(a(1));
        assertEquals("[{\"address\":\"127.0.0.1:1\",\"region\":\"eu-west\",\"priority\":0,\"weight\":3,\"healthy\":true,"
                + "\"consecutive_failures\":1,\"ejections\":0,\"ejected_ms\":0,\"active\":1},{\"address\":\"127.0.0.1:2\",\"region\":\"\","
                + "\"priority\":1,\"weight\":1,\"healthy\":false,\"consecutive_failures\":0,\"ejections\":0,\"ejected_ms\":0,\"active\":0}]", lb.json());
        lb.refused(a(1));
        String ejected = lb.json();
        assertTrue(ejected.contains("\"ejections\":1,\"ejected_ms\":"), ejected);
        long left = Long.parseLong(ejected.replaceAll(".*?\"ejected_ms\":(\\d+).*", "$1"));
        assertTrue(left > 25_000 && left <= 30_000, "the time left of the 30 s ejection: " + ejected);
    }

    @Test
    void aNewSpecKeepsTheOutlierStateAndLoadOfTheEndpointsThatStay() {
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.LEAST_REQUEST, ep(1, 0, 1, true), ep(2, 0, 1, true)),
                new SplittableRandom(1), Clock.systemUTC(), 3, Duration.ofSeconds(30));
        for (int i = 0; i < 3; i++) {
            lb.failed(a(1));
        }
        for (int i = 0; i < 5; i++) {
            lb.connected(a(2));
        }
        assertTrue(lb.ejected(a(1)));
        // the registry adds an endpoint: a new spec, a new load balancer
        var next = lb.next(cluster(ProxyConfig.LbPolicy.LEAST_REQUEST, ep(1, 0, 1, true), ep(2, 0, 1, true), ep(3, 0, 1, true)));
        assertTrue(next.ejected(a(1)), "the ejection outlives the update");
        assertEquals(Map.of(3, 40), count(next, 40), "a(1) is ejected and a(2) still carries 5 requests: the least-loaded new endpoint takes them");
        for (int i = 0; i < 5; i++) {
            next.released(a(2)); // the requests that were in flight before the update end
        }
        assertEquals(1.0, count(next, 400).getOrDefault(2, 0) / 200.0, 0.25, "a(2) is back to an even share once they ended");
    }

    /** A clock the test moves. */
    static final class TestClock extends Clock {
        Instant now = Instant.parse("2026-11-26T12:00:00Z");

        @Override
        public ZoneOffset getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return now;
        }

        void advance(Duration d) {
            now = now.plus(d);
        }
    }

    @Test
    void consecutiveConnectFailuresEjectAnEndpointUntilTheEjectionEnds() {
        var clock = new TestClock();
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, true), ep(2, 0, 1, true)),
                new SplittableRandom(1), clock, 3, Duration.ofSeconds(30));
        for (int i = 0; i < 3; i++) {
            lb.failed(a(1));
        }
        assertTrue(lb.ejected(a(1)));
        assertEquals(Map.of(2, 20), count(lb, 20), "no traffic to the ejected endpoint");
        clock.advance(Duration.ofSeconds(31));
        assertTrue(count(lb, 20).getOrDefault(1, 0) > 0, "back after the ejection");
    }

    /** Seconds left of {@code port}'s ejection and its multiplier, from the admin view. */
    static String ejection(ClusterLoadBalancer lb, int port) {
        var m = java.util.regex.Pattern.compile("\\{\"address\":\"127.0.0.1:" + port + "\"[^}]*\"ejections\":(\\d+),\"ejected_ms\":(\\d+)").matcher(lb.json());
        assertTrue(m.find(), lb.json());
        return "x" + m.group(1) + " " + Long.parseLong(m.group(2)) / 1000 + " s";
    }

    @Test
    void failuresOfAnEjectedEndpointNeitherLengthenItsEjectionNorRaiseItsMultiplier() {
        var clock = new TestClock();
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, true), ep(2, 1, 1, true)),
                new SplittableRandom(1), clock, 5, Duration.ofSeconds(30));
        lb.refused(a(1)); // the region went dark
        assertEquals("x1 30 s", ejection(lb, 1));
        clock.advance(Duration.ofSeconds(2));
        for (int i = 0; i < 12; i++) {
            lb.failed(a(1)); // requests that were in flight to it, reset as it died
        }
        lb.refused(a(1));
        assertEquals("x1 28 s", ejection(lb, 1), "the first ejection, no longer");
        clock.advance(Duration.ofSeconds(29));
        assertFalse(lb.ejected(a(1)), "back 30 s after the fault");
        assertEquals(0, lb.pick(Set.of()).orElseThrow().getPort() - 1, "and the first priority again");
    }

    @Test
    void theEjectionMultiplierGrowsWhenAnEndpointFailsSoonAfterItsReturnAndFallsOneStepPerIntervalBackInService() {
        var clock = new TestClock();
        var lb = new ClusterLoadBalancer(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, true), ep(2, 1, 1, true)),
                new SplittableRandom(1), clock, 5, Duration.ofSeconds(30));
        lb.refused(a(1));
        clock.advance(Duration.ofSeconds(31));
        lb.refused(a(1)); // still down when its ejection ended
        assertEquals("x2 60 s", ejection(lb, 1));
        clock.advance(Duration.ofSeconds(61));
        lb.refused(a(1));
        assertEquals("x3 90 s", ejection(lb, 1));
        clock.advance(Duration.ofSeconds(90 + 25)); // back in service for 25 s: two intervals of 10 s
        assertEquals("x1 0 s", ejection(lb, 1));
        lb.refused(a(1));
        assertEquals("x2 60 s", ejection(lb, 1));
        clock.advance(Duration.ofSeconds(60 + 600)); // a later, separate incident starts from the base time
        lb.refused(a(1));
        assertEquals("x1 30 s", ejection(lb, 1));
        var next = lb.next(cluster(ProxyConfig.LbPolicy.ROUND_ROBIN, ep(1, 0, 1, true), ep(2, 1, 1, true), ep(3, 1, 1, true)));
        assertEquals("x1 30 s", ejection(next, 1), "a new assignment keeps the ejection and its multiplier");
    }
}
