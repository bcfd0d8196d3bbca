package dev.isthmus.proxy.http;

import io.netty.util.collection.LongObjectHashMap;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.FastThreadLocal;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * The per-request timeouts of one event loop that share a duration (a route's timeout, an HTTP/1.1
 * listener's request and idle timeouts): a list in the order they were set, which is also the order
 * they fall due, and one task scheduled on the loop for the first of them. Setting one appends to
 * the list and cancelling one unlinks it, both in constant time, where a task per request costs an
 * insertion into and a removal from the loop's scheduled-task heap; under h2load's 320 streams that
 * heap's upkeep was about 2% of the sidecar's CPU (async-profiler, docs/benchmarks.md). Confined to
 * its event loop, like everything it calls.
 */
final class Deadlines {

    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(Deadlines.class);

    /** A timeout that is set; {@link #cancel} it when the request ends first. */
    static final class Timeout {
        private final Deadlines owner;
        private final Runnable task;
        private final long due;
        private Timeout prev;
        private Timeout next;
        private boolean linked = true;

        private Timeout(Deadlines owner, Runnable task, long due) {
            this.owner = owner;
            this.task = task;
            this.due = due;
        }

        /** The task will not run (nothing happens if it has run already). */
        void cancel() {
            if (linked) {
                owner.unlink(this);
            }
        }
    }

    /** By duration in nanoseconds, keyed without boxing. */
    private static final FastThreadLocal<LongObjectHashMap<Deadlines>> BY_NANOS = new FastThreadLocal<>() {
        @Override
        protected LongObjectHashMap<Deadlines> initialValue() {
            return new LongObjectHashMap<>();
        }
    };

    private final EventExecutor loop;
    private final long nanos;
    private Timeout head;
    private Timeout tail;
    private ScheduledFuture<?> tick;

    private Deadlines(EventExecutor loop, long nanos) {
        this.loop = loop;
        this.nanos = nanos;
    }

    /** Runs {@code task} on {@code loop} after {@code millis}, unless cancelled; called on {@code loop}. */
    static Timeout schedule(EventExecutor loop, long millis, Runnable task) {
        assert loop.inEventLoop();
        long nanos = TimeUnit.MILLISECONDS.toNanos(millis);
        LongObjectHashMap<Deadlines> byNanos = BY_NANOS.get();
        Deadlines deadlines = byNanos.get(nanos);
        if (deadlines == null) {
            deadlines = new Deadlines(loop, nanos);
            byNanos.put(nanos, deadlines);
        }
        return deadlines.add(task);
    }

    private Timeout add(Runnable task) {
        var t = new Timeout(this, task, System.nanoTime() + nanos);
        if (tail == null) {
            head = t;
        } else {
            tail.next = t;
            t.prev = tail;
        }
        tail = t;
        if (tick == null) {
            tick = loop.schedule(this::fire, nanos, TimeUnit.NANOSECONDS);
        }
        return t;
    }

    private void unlink(Timeout t) {
        t.linked = false;
        if (t.prev == null) {
            head = t.next;
        } else {
            t.prev.next = t.next;
        }
        if (t.next == null) {
            tail = t.prev;
        } else {
            t.next.prev = t.prev;
        }
        t.prev = null;
        t.next = null;
    }

    /** Runs what is due; the task is scheduled again for the next one, if any is left. */
    private void fire() {
        tick = null;
        long now = System.nanoTime();
        while (head != null && head.due - now <= 0) {
            Timeout t = head;
            unlink(t);
            try {
                t.task.run();
            } catch (RuntimeException e) { // the others are still due
                log.warn("event=timeout_task_failed cause=\"{}\"", e.toString(), e);
            }
        }
        if (head != null && tick == null) {
            tick = loop.schedule(this::fire, head.due - now, TimeUnit.NANOSECONDS);
        }
    }
}
