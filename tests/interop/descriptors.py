"""Message classes built at run time from a FileDescriptorSet, so no protoc is needed."""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def message_class(descriptor_set_path, full_name):
    """The class of message `full_name` described in the serialized FileDescriptorSet."""
    with open(descriptor_set_path, "rb") as f:
        files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))
