"""Server reflection that keeps the proto comments, so ``grpcurl describe`` documents the API.

Python's generated descriptors drop source info (comments). ``make gen`` also writes
``trading/v1/descriptors.binpb`` with source info; this servicer answers reflection requests
from those raw file descriptors, and from the default pool for everything else.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

DESCRIPTOR_SET = "descriptors.binpb"


def _documented_files() -> dict[str, bytes]:
    data = files("trading.v1").joinpath(DESCRIPTOR_SET).read_bytes()
    file_set = descriptor_pb2.FileDescriptorSet.FromString(data)
    return {f.name: f.SerializeToString() for f in file_set.file}


def _pool_with(raw: dict[str, bytes]) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for serialized in raw.values():
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(serialized))
    return pool


class DocumentedReflectionServicer(ReflectionServicer):  # type: ignore[misc]
    """Reflection whose file descriptors carry the proto comments."""

    def __init__(self, service_names: list[str]) -> None:
        raw = _documented_files()
        for module in (health_pb2, reflection_pb2):
            proto = descriptor_pb2.FileDescriptorProto()
            module.DESCRIPTOR.CopyToProto(proto)
            raw.setdefault(proto.name, proto.SerializeToString())
        self._raw = raw
        super().__init__(service_names, pool=_pool_with(raw))

    def _response(self, descriptor: Any, request: Any) -> Any:
        names: list[str] = []
        pending = [descriptor]
        while pending:
            current = pending.pop()
            if current.name in names:
                continue
            names.append(current.name)
            pending.extend(current.dependencies)
        return reflection_pb2.ServerReflectionResponse(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=[self._raw[name] for name in names]
            ),
            original_request=request,
        )

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        try:
            return self._response(self._pool.FindFileByName(filename), request)
        except KeyError:
            return super()._file_by_filename(request, filename)

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        # Python's descriptor pool does not index methods: a method lives in its service's file.
        parent = fully_qualified_name.rpartition(".")[0]
        for name in (fully_qualified_name, parent):
            try:
                return self._response(self._pool.FindFileContainingSymbol(name), request)
            except KeyError:
                continue
        return super()._file_containing_symbol(request, fully_qualified_name)


def enable_documented_reflection(service_names: list[str], server: grpc.aio.Server) -> None:
    """Serve reflection for ``service_names`` (plus health and reflection) on ``server``."""
    names = [
        *service_names,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name,
    ]
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        DocumentedReflectionServicer(names), server
    )
