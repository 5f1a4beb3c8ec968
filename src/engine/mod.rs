//! Engine: fitting W ([`fit`]) and its file format ([`fitfile`]), explaining images ([`explain`]),
//! exporting maps into the graph ([`export`]), CAM as a fit ([`cam`]) and evaluation ([`eval`]).
pub mod fit;
pub mod fitfile;
pub mod fitset;
pub mod maps_graph;
pub mod cam;
pub mod explain;
pub mod export;
pub mod eval;
