package dev.isthmus.controller.membership;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Splits bodies larger than the bus's message limit into parts, and joins received parts again.
 * A message is named by its sender and an id; its parts may arrive in any order; one whose parts
 * stop arriving is dropped by {@link #expire}.
 */
final class PartAssembler {

    /** A part header that cannot be right. */
    static final class BadPartException extends Exception {
        BadPartException(String message) {
            super(message);
        }
    }

    private record Pending(byte[][] parts, long startedMillis) {
    }

    static final int MAX_PARTS = 4096;

    private final Map<String, Pending> pending = new ConcurrentHashMap<>();

    static List<byte[]> split(byte[] body, int partSize) {
        if (body.length <= partSize) {
            return List.of(body);
        }
        var out = new ArrayList<byte[]>();
        for (int from = 0; from < body.length; from += partSize) {
            out.add(Arrays.copyOfRange(body, from, Math.min(body.length, from + partSize)));
        }
        return out;
    }

    /**
     * Keeps one part ({@code header} is {@code <index>/<count>}, 1-based); returns the whole body
     * once every part of the message is there.
     */
    Optional<byte[]> add(String sender, String messageId, String header, byte[] data, long nowMillis) throws BadPartException {
        int index;
        int count;
        try {
            String[] ic = header.split("/");
            index = Integer.parseInt(ic[0]);
            count = Integer.parseInt(ic[1]);
        } catch (RuntimeException e) {
            throw new BadPartException("bad part header '" + header + "'");
        }
        if (messageId == null || count < 2 || count > MAX_PARTS || index < 1 || index > count) {
            throw new BadPartException("bad part header '" + header + "' (message " + messageId + ")");
        }
        String key = sender + "/" + messageId;
        Pending p = pending.computeIfAbsent(key, k -> new Pending(new byte[count][], nowMillis));
        if (p.parts().length != count) {
            pending.remove(key);
            throw new BadPartException("message " + messageId + " of " + sender + " changed its part count");
        }
        synchronized (p) {
            p.parts()[index - 1] = data;
            for (byte[] b : p.parts()) {
                if (b == null) {
                    return Optional.empty();
                }
            }
        }
        pending.remove(key);
        var out = new ByteArrayOutputStream();
        for (byte[] b : p.parts()) {
            out.writeBytes(b);
        }
        return Optional.of(out.toByteArray());
    }

    /** Drops messages started before {@code deadlineMillis}; returns their keys. */
    List<String> expire(long deadlineMillis) {
        var dropped = new ArrayList<String>();
        pending.entrySet().removeIf(e -> {
            if (e.getValue().startedMillis() < deadlineMillis) {
                dropped.add(e.getKey());
                return true;
            }
            return false;
        });
        return dropped;
    }
}
