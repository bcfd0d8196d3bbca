package dev.isthmus.proxy.grpc;

/**
 * A gRPC call's status: its code (grpc/grpc doc/statuscodes.md) and message.
 *
 * @param code 0 (OK) to 16; another number is kept and named "CODE_n"
 */
public record GrpcStatus(int code, String message) {

    public static final int OK = 0;
    public static final int CANCELLED = 1;
    public static final int UNKNOWN = 2;
    public static final int INVALID_ARGUMENT = 3;
    public static final int DEADLINE_EXCEEDED = 4;
    public static final int PERMISSION_DENIED = 7;
    public static final int RESOURCE_EXHAUSTED = 8;
    public static final int UNIMPLEMENTED = 12;
    public static final int INTERNAL = 13;
    public static final int UNAVAILABLE = 14;
    public static final int UNAUTHENTICATED = 16;

    private static final String[] NAMES = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED"};

    public boolean isOk() {
        return code == OK;
    }

    /** The code's name, as grpc-java's {@code Status.Code} names it. */
    public String name() {
        return code >= 0 && code < NAMES.length ? NAMES[code] : "CODE_" + code;
    }

    /** "UNAVAILABLE: the connection to the server closed" (as grpc-java prints a status's code and description). */
    @Override
    public String toString() {
        return message.isEmpty() ? name() : name() + ": " + message;
    }
}
