package dev.isthmus.proxy.grpc;

/** A call that did not end OK, with its status. */
public final class GrpcException extends RuntimeException {

    private final GrpcStatus status;

    public GrpcException(GrpcStatus status) {
        super(status.toString());
        this.status = status;
    }

    public GrpcStatus status() {
        return status;
    }
}
