package dev.isthmus.proxy.config.xds;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import org.junit.jupiter.api.Test;

/** The retry rule both HTTP proxies share: what each retry_on condition covers, and for which methods. */
class RetrySpecTest {

    static ProxyConfig.RetrySpec on(String... conditions) {
        return new ProxyConfig.RetrySpec(Set.of(conditions), 2);
    }

    @Test
    void resetFiveXxAndGatewayErrorCoverConnectFailuresResetsAndRefusedStreamsAsInEnvoy() {
        for (String broad : new String[] {"reset", "5xx", "gateway-error"}) {
            assertTrue(on(broad).retries("connect-failure", 0), broad);
            assertTrue(on(broad).retries("reset", 0), broad);
            assertTrue(on(broad).retries("refused-stream", 0), broad);
        }
        assertTrue(on("connect-failure").retries("connect-failure", 0));
        assertFalse(on("connect-failure").retries("reset", 0));
        assertFalse(on("connect-failure").retries("refused-stream", 0));
        assertTrue(on("refused-stream").retries("refused-stream", 0));
        assertFalse(on("refused-stream").retries("reset", 0));
    }

    @Test
    void answersAndGrpcStatusesOnlyAsNamed() {
        assertTrue(on("5xx").retries("5xx", 500));
        assertTrue(on("gateway-error").retries("5xx", 503));
        assertFalse(on("gateway-error").retries("5xx", 500));
        assertFalse(on("reset").retries("5xx", 503));
        assertTrue(on("unavailable").retries("unavailable", 0));
        assertFalse(on("5xx").retries("unavailable", 0), "a gRPC status is not a 5xx");
    }

    @Test
    void resetsAndAnswersAreRetriedForIdempotentMethodsOnlyAndTheRequestIsKeptWhenSomethingAfterSendingIsRetried() {
        assertTrue(ProxyConfig.RetrySpec.anyMethod("connect-failure"));
        assertTrue(ProxyConfig.RetrySpec.anyMethod("refused-stream"));
        assertTrue(ProxyConfig.RetrySpec.anyMethod("unavailable"));
        assertFalse(ProxyConfig.RetrySpec.anyMethod("reset"));
        assertFalse(ProxyConfig.RetrySpec.anyMethod("5xx"));
    }
}
