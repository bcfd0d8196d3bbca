package dev.isthmus.cli.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ShopLoadTest {

    @Test
    void totalsInBucketsAgreeWithTheExactPercentilesWithinOnePercent() {
        var samples = new ArrayList<ShopLoad.Sample>();
        var random = new java.util.Random(7);
        for (int i = 0; i < 20_000; i++) {
            long latency = (long) (200_000 + Math.abs(random.nextGaussian()) * 3_000_000); // 0.2 ms and a long tail
            boolean fail = i % 100 == 0;
            samples.add(new ShopLoad.Sample(i, latency, fail ? 0 : 200, fail ? null : (i % 3 == 0 ? "ap-south" : "eu-west"),
                    fail ? "timeout" : null));
        }
        var exact = ShopLoad.window(samples, Long.MIN_VALUE, Long.MAX_VALUE);
        var totals = new ShopLoad.Totals();
        totals.addAll(samples);
        var bucketed = totals.window();
        assertEquals(exact.requests(), bucketed.requests());
        assertEquals(exact.failed(), bucketed.failed());
        assertEquals(exact.byRegion(), bucketed.byRegion());
        assertEquals(exact.p50Millis(), bucketed.p50Millis(), exact.p50Millis() * 0.01);
        assertEquals(exact.p99Millis(), bucketed.p99Millis(), exact.p99Millis() * 0.01);
        assertTrue(bucketed.p99Millis() >= exact.p99Millis(), "a bucket's upper bound: never below the exact value");
        assertEquals(Map.of(), new ShopLoad.Totals().window().byRegion());
    }
}
