package dev.isthmus.controller.nats;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Test;

class BackoffTest {

    @Test
    void waitsDoubleFrom250msUpToTheMaximumWithJitter() {
        Duration max = Duration.ofSeconds(2);
        for (int i = 0; i < 50; i++) {
            long first = NatsConnection.backoff(1, max).toMillis();
            long third = NatsConnection.backoff(3, max).toMillis();
            long late = NatsConnection.backoff(40, max).toMillis();
            assertTrue(first >= 250 && first <= 313, "first " + first);
            assertTrue(third >= 1000 && third <= 1250, "third " + third);
            assertTrue(late >= 2000 && late <= 2500, "capped " + late);
        }
    }
}
