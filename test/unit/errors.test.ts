/**
 * The error table (src/errors.ts): each kind's gRPC status, HTTP status and exit code, how
 * errors of the core, the network and the client are matched to kinds, and that the control
 * server and the CLI both go through it (a kind that crosses the control API leaves the CLI
 * with the kind's own exit code).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CkvError, ConditionFailedError, InvalidKeyError, StoreLockedError, ValueTooLargeError } from '../../src/core/errors.js';
import { ReplicaClosedError } from '../../src/core/replica.js';
import { ControlClient, NodeUnreachableError, OutcomeUnknownError, SocketPermissionError } from '../../src/control/client.js';
import { ConnectionLostError, GrpcStatus, GrpcStatusError } from '../../src/control/h2.js';
import { toServiceError } from '../../src/control/messages.js';
import { describeError } from '../../src/cli/common.js';
import { NoPeersError, UnknownPeerError } from '../../src/net/cluster.js';
import {
  ClusterKeyError,
  errorKinds,
  ExitCode,
  kindOf,
  kindOfGrpcStatus,
  NotFoundError,
  PeerConnectedError,
  SocketInUseError,
  UsageError,
  type ErrorKind,
} from '../../src/errors.js';

const kinds = Object.keys(errorKinds) as ErrorKind[];

describe('the error table', () => {
  it('gives each gRPC status a request kind can carry exactly one exit code', () => {
    for (const kind of kinds) {
      const spec = errorKinds[kind];
      if (spec.where !== 'request') continue;
      assert.equal(errorKinds[kindOfGrpcStatus(spec.grpc)].exit, spec.exit, `${kind}: gRPC ${spec.grpc} means another exit code`);
    }
  });

  it('matches each error code or name to one kind only', () => {
    const seen = new Map<string, ErrorKind>();
    for (const kind of kinds) {
      for (const match of errorKinds[kind].matches) {
        assert.ok(!seen.has(match), `${match} is in ${seen.get(match)} and ${kind}`);
        seen.set(match, kind);
      }
    }
  });

  it('uses only the documented exit codes and HTTP statuses', () => {
    for (const kind of kinds) {
      assert.ok(Object.values(ExitCode).includes(errorKinds[kind].exit), kind);
      assert.ok([400, 404, 409, 412, 413, 500, 503].includes(errorKinds[kind].http), `${kind}: HTTP ${errorKinds[kind].http}`);
    }
  });

  it('matches the errors of the core, the network and the client to their kinds', () => {
    const cases: [unknown, ErrorKind, number][] = [
      [new InvalidKeyError('bad key'), 'invalidKey', ExitCode.refused],
      [new ValueTooLargeError(10, 5), 'valueTooLarge', ExitCode.refused],
      [new NotFoundError('key not found: k'), 'notFound', ExitCode.notFound],
      [new NoPeersError(), 'noPeers', ExitCode.refused],
      [new UnknownPeerError('12D3KooW'), 'unknownPeer', ExitCode.notFound],
      [new PeerConnectedError('12D3KooW'), 'peerConnected', ExitCode.refused],
      [new ReplicaClosedError(), 'stopping', ExitCode.unreachable],
      [new NodeUnreachableError('/tmp/x.sock'), 'unreachable', ExitCode.unreachable],
      [new StoreLockedError('/tmp/db'), 'storeLocked', ExitCode.failed],
      [new UsageError('--http x: bad'), 'usage', ExitCode.usage],
      [new ClusterKeyError('cannot read'), 'clusterKeyUnreadable', ExitCode.usage],
      [new ConditionFailedError('k', 'the key to be absent', '1.0@00000000000000aa', false), 'conditionFailed', ExitCode.conditionFailed],
      // src/net throws a plain CkvError with the stable code today.
      [new CkvError('ERR_CLUSTER_KEY', 'cannot read cluster key /x: ENOENT'), 'clusterKeyUnreadable', ExitCode.usage],
      [new CkvError('ERR_SOMETHING_NEW', 'new'), 'failed', ExitCode.failed],
      [new Error('boom'), 'failed', ExitCode.failed],
      ['not even an error', 'failed', ExitCode.failed],
    ];
    for (const [error, kind, exit] of cases) {
      assert.equal(kindOf(error), kind, String(error));
      assert.equal(describeError(error).exitCode, exit, String(error));
    }
  });

  it('answers a request error with its kind gRPC status, and the CLI exits with the kind code', () => {
    const errors = [
      new InvalidKeyError('bad key'),
      new ValueTooLargeError(10, 5),
      new NoPeersError(),
      new UnknownPeerError('12D3KooW'),
      new PeerConnectedError('12D3KooW'),
      new ReplicaClosedError(),
      new Error('boom'),
    ];
    for (const error of errors) {
      const kind = kindOf(error);
      const status = toServiceError(error);
      assert.equal(status.code, errorKinds[kind].grpc, `${kind}: gRPC status`);
      const described = describeError(new GrpcStatusError(status.code, status.details));
      assert.equal(described.exitCode, errorKinds[kind].exit, `${kind}: exit code after the round trip`);
    }
    assert.equal(toServiceError(new NoPeersError()).code, GrpcStatus.FAILED_PRECONDITION);
    assert.equal(toServiceError(new PeerConnectedError('p')).code, GrpcStatus.FAILED_PRECONDITION);
    assert.equal(toServiceError(new Error('boom')).code, GrpcStatus.INTERNAL);
    assert.equal(toServiceError(new ReplicaClosedError()).details, 'the node is stopping');
  });

  it('tells a socket of another user, a lost write and a socket in use from "no node is running"', () => {
    const client = new ControlClient('/tmp/ckv-test-never-connected.sock'); // no connection is made
    try {
      const cases: [unknown, ErrorKind, number][] = [
        [client.translate(new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'cannot connect: connect EACCES /x.sock')), 'socketPermissionDenied', ExitCode.unreachable],
        [client.translate(new GrpcStatusError(GrpcStatus.UNAVAILABLE, 'cannot connect: connect ECONNREFUSED /x.sock')), 'unreachable', ExitCode.unreachable],
        [client.translate(new ConnectionLostError('closed', true)), 'stopping', ExitCode.unreachable], // a read: node unavailable
        [new SocketPermissionError('/x.sock'), 'socketPermissionDenied', ExitCode.unreachable],
        [new OutcomeUnknownError('may or may not be stored'), 'outcomeUnknown', ExitCode.outcomeUnknown],
        [new SocketInUseError('/x.sock'), 'socketInUse', ExitCode.failed],
      ];
      for (const [error, kind, exit] of cases) {
        if (!(error instanceof GrpcStatusError)) assert.equal(kindOf(error), kind, String(error));
        assert.equal(describeError(error).exitCode, exit, String(error));
      }
      assert.match(describeError(cases[0]![0]).message, /^permission denied \(EACCES\) on the control socket/);
      assert.equal(ExitCode.outcomeUnknown, 6);
    } finally {
      client.close();
    }
  });

  it('keeps error messages to one line', () => {
    const status = toServiceError(new Error('first line\nsecond line'));
    assert.equal(status.details, 'first line');
    assert.equal(describeError(new Error('first\nsecond')).message, 'first');
  });
});
