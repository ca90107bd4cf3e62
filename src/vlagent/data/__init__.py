"""The data layer: annotations CSV (:mod:`~vlagent.data.annotations`), image sources, folder or
zip (:mod:`~vlagent.data.images`), query.json (:mod:`~vlagent.data.queries`) and the allowed
image roots (:mod:`~vlagent.data.resolver`). Import from the module that holds a name: the
package imports none of them (no circle through this ``__init__``)."""
