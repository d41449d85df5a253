"""Metadata definitions (metadefs): Glance's catalogue of the metadata an operator suggests for
images, volumes, flavors and servers, served at ``/v2/metadefs``.

A **namespace** groups **properties** (each a JSON-schema fragment: title, type, enum...),
**objects** (named groups of properties) and **tags**, and is associated with the **resource
types** (``OS::Glance::Image``, ``OS::Nova::Flavor``...) it applies to. Namespaces belong to a
project and are ``public`` or ``private``; a ``protected`` one cannot be deleted, nor can what
it holds. :class:`glint.metadefs.service.MetadefService` is the entry point.
"""
