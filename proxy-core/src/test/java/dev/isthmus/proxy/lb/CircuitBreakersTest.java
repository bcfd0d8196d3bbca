package dev.isthmus.proxy.lb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.isthmus.proxy.config.xds.ProxyConfig;
import org.junit.jupiter.api.Test;

class CircuitBreakersTest {

    @Test
    void limitsAreEnforcedAndSlotsComeBack() {
        var cb = new CircuitBreakers(new ProxyConfig.Limits(2, 3, 1, -1, 3));
        assertNull(cb.tryConnection());
        assertNull(cb.tryConnection());
        assertEquals("max_connections", cb.tryConnection());
        cb.endConnection();
        assertNull(cb.tryConnection());
        assertNull(cb.tryRetry());
        assertEquals("max_retries", cb.tryRetry());
    }

    @Test
    void theRetryBudgetFollowsTheRequestsInFlight() {
        var cb = new CircuitBreakers(new ProxyConfig.Limits(100, 100, 100, 20.0, 1));
        assertNull(cb.tryRetry(), "the minimum concurrency allows one with nothing in flight");
        assertEquals("retry_budget", cb.tryRetry());
        for (int i = 0; i < 10; i++) {
            cb.tryRequest();
        }
        assertNull(cb.tryRetry(), "20% of 10 requests: 2 retries");
        assertEquals("retry_budget", cb.tryRetry());
        cb.update(new ProxyConfig.Limits(100, 100, 100, 50.0, 1));
        assertNull(cb.tryRetry(), "a new budget applies to the counts as they stand");
    }

    @Test
    void aRetryBudgetOverridesTheRetryCircuitBreakerAsInEnvoy() {
        // max_retries 3 (Envoy's default) and a budget whose floor is 10: the budget decides
        var cb = new CircuitBreakers(new ProxyConfig.Limits(1024, 1024, 3, 20.0, 10));
        for (int i = 0; i < 10; i++) {
            assertNull(cb.tryRetry(), "retry " + (i + 1) + " of the floor of 10");
        }
        assertEquals("retry_budget", cb.tryRetry());
    }
}
