package dev.isthmus.proxy.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.channel.DefaultEventLoop;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class DeadlinesTest {

    private final DefaultEventLoop loop = new DefaultEventLoop();

    @AfterEach
    void stop() {
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    }

    @Test
    void dueTasksRunInOrderAndCancelledOnesDoNot() throws Exception {
        var ran = new CopyOnWriteArrayList<String>();
        var done = new CountDownLatch(1);
        long start = System.nanoTime();
        loop.submit(() -> {
            Deadlines.schedule(loop, 100, () -> ran.add("a"));
            var b = Deadlines.schedule(loop, 100, () -> ran.add("b"));
            Deadlines.schedule(loop, 100, () -> ran.add("c"));
            Deadlines.schedule(loop, 300, () -> {
                ran.add("long");
                done.countDown();
            });
            b.cancel();
            b.cancel(); // twice: nothing more happens
        }).sync();
        // one set later, after the first ones have run: the list's task is scheduled again for it
        Thread.sleep(150);
        loop.submit(() -> Deadlines.schedule(loop, 100, () -> ran.add("d"))).sync();
        assertTrue(done.await(5, TimeUnit.SECONDS));
        Thread.sleep(100);
        assertEquals(List.of("a", "c", "d", "long"), ran);
        assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(300), "the 300 ms timeout ran early");
    }

    @Test
    void aTimeoutCancelledAfterItRanChangesNothingAndOneThatThrowsDoesNotStopTheOthers() throws Exception {
        var ran = new CopyOnWriteArrayList<String>();
        var done = new CountDownLatch(1);
        var first = new Deadlines.Timeout[1];
        loop.submit(() -> {
            first[0] = Deadlines.schedule(loop, 50, () -> ran.add("first"));
            Deadlines.schedule(loop, 50, () -> {
                throw new IllegalStateException("a task that fails");
            });
            Deadlines.schedule(loop, 50, () -> {
                ran.add("after the failure");
                done.countDown();
            });
        }).sync();
        assertTrue(done.await(5, TimeUnit.SECONDS));
        loop.submit(() -> {
            first[0].cancel();
            Deadlines.schedule(loop, 50, () -> ran.add("next"));
        }).sync();
        Thread.sleep(200);
        assertEquals(List.of("first", "after the failure", "next"), ran);
    }
}
